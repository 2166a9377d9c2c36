"""Summarise a ``tools/gpu_check.sh`` run into ``OUT_DIR/summary.json``.

Reads ``OUT_DIR/steps.tsv`` (each step's exit code, seconds and cap, as
the script records them), ``OUT_DIR/benchmark.json`` (the training-step
benchmark), ``OUT_DIR/tests.xml`` (pytest's JUnit XML of ``pytest -m
cuda``) and ``OUT_DIR/data.json`` (the data-pipeline benchmark), any of
which may be missing (a step that crashed or timed out), writes
``OUT_DIR/summary.json``, prints it and exits non-zero when a step failed
or timed out, a test failed or errored, no CUDA test passed (not asked of
``--cpu``, where they are skipped), or a part is missing.

    python tools/gpu_check_summary.py work_dirs/gpu_check [--cpu]

Paper: https://arxiv.org/abs/2203.05175
"""
import argparse
import json
import os.path as osp
import sys
import xml.etree.ElementTree as ET
from typing import Optional


def test_counts(path: str) -> Optional[dict]:
    """Passed/failed/errors/skipped from a JUnit XML file, and the names
    of the failed tests; None if there is no file."""
    if not osp.exists(path):
        return None
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == 'testsuite' else root.iter('testsuite')
    counts = dict(tests=0, failures=0, errors=0, skipped=0)
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    counts['passed'] = (counts['tests'] - counts['failures'] -
                        counts['errors'] - counts['skipped'])
    counts['failed_tests'] = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in root.iter('testcase')
        if case.find('failure') is not None or case.find('error') is not None
    ]
    return counts


def _read_json(path: str) -> Optional[dict]:
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def step_figures(bench: Optional[dict]) -> Optional[dict]:
    """The training-step benchmark's headline figures."""
    if bench is None:
        return None
    flops = bench['model_flops']
    return dict(
        gpu=bench['machine'].get('gpu'),
        batch_size=bench['batch_size'],
        img_per_s=bench['img_per_s'],
        mvp_vs_stock=bench['ratios']['mvp_vs_stock'],
        teacher_overhead=bench['ratios']['teacher_overhead'],
        achieved_tflops=flops['achieved_tflops'],
        mfu=flops['mfu'],
        peak_memory_mib=bench['peak_memory_mib'],
        targets_met=bench['targets_met'])


def data_figures(data: Optional[dict]) -> Optional[dict]:
    """The data-pipeline benchmark's headline figures."""
    if data is None:
        return None
    d = data['data']
    return dict(
        workers=d['workers'],
        cpu=data['machine']['cpu'],
        ours_img_per_s_per_worker=d['ours_img_per_s_per_worker'],
        stock_img_per_s_per_worker=d['stock_img_per_s_per_worker'],
        ratio=d['ratio'],
        loader_cores_per_gpu=d['loader_cores_per_gpu'])


def step_records(path: str) -> Optional[dict]:
    """Each step's ``exit_code``, ``seconds``, ``cap_s`` and ``timed_out``
    (exit code 124: ``timeout`` stopped it), in the order they ran; None if
    there is no file."""
    if not osp.exists(path):
        return None
    steps = {}
    with open(path) as f:
        for line in f:
            name, code, seconds, cap = line.split()
            steps[name] = dict(exit_code=int(code), seconds=int(seconds),
                               cap_s=int(cap), timed_out=code == '124')
    return steps


def summarise(out_dir: str, cpu: bool = False) -> dict:
    """The summary of a ``tools/gpu_check.sh`` run.

    Args:
        out_dir (str): Its output folder.
        cpu (bool): The ``--cpu`` twin: no CUDA test has to pass.
            Defaults to False.

    Returns:
        dict: ``ok``, ``problems``, ``steps``, ``tests``, ``step``,
        ``data``.
    """
    steps = step_records(osp.join(out_dir, 'steps.tsv'))
    tests = test_counts(osp.join(out_dir, 'tests.xml'))
    step = step_figures(_read_json(osp.join(out_dir, 'benchmark.json')))
    data = data_figures(_read_json(osp.join(out_dir, 'data.json')))
    problems = []
    for name, record in (steps or {}).items():
        if record['timed_out']:
            problems.append(f"{name}: timed out after {record['cap_s']} s")
        elif record['exit_code']:
            problems.append(f"{name}: exit code {record['exit_code']} "
                            f'(see {name}.log)')
    if tests is None:
        problems.append('no test report (tests.xml)')
    else:
        if tests['failures'] or tests['errors']:
            problems.append(f"{tests['failures']} failed, {tests['errors']} "
                            'errors: ' + ', '.join(tests['failed_tests']))
        if tests['passed'] == 0 and not cpu:
            problems.append('no CUDA test passed')
    if step is None:
        problems.append('no step benchmark (benchmark.json)')
    if data is None:
        problems.append('no data benchmark (data.json)')
    return dict(ok=not problems, problems=problems, steps=steps, tests=tests,
                step=step, data=data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help="tools/gpu_check.sh's output folder")
    parser.add_argument('--cpu', action='store_true',
                        help='the CPU twin (tools/gpu_check.sh --cpu)')
    args = parser.parse_args()
    out_dir = args.out_dir
    summary = summarise(out_dir, args.cpu)
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    print(f"gpu_check: {'PASSED' if summary['ok'] else 'FAILED'} "
          f"({osp.join(out_dir, 'summary.json')})")
    return 0 if summary['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
