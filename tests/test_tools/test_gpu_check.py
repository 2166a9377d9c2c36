"""tools/gpu_check.sh without a GPU: its CPU twin (``--cpu``: the same
steps at tiny sizes) runs where only ``python3`` exists, in order, each
under its own cap, and writes the summary although a step timed out; the
GPU check refuses clearly without a GPU; the summary reads what the
benchmarks and pytest write; the data benchmark's JSON (``tools/benchmark.py
CONFIG --data``, smoke test, no timing assertions)."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from psnr_bounds import PSNR_FULL_DECODE
from tiny import REPO

SCRIPT = osp.join(REPO, 'tools', 'gpu_check.sh')
JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="{failures}" skipped="1"
 tests="4" time="9.1"><testcase classname="tests.test_cuda_paths"
 name="test_a[cuda]"/><testcase classname="tests.test_cuda_paths"
 name="test_b[cuda]"/><testcase classname="tests.test_distributed"
 name="test_nccl[cuda]"><skipped message="needs 2 CUDA GPUs"/></testcase>
<testcase classname="tests.test_cuda_paths" name="test_c[cuda]">{failure}
</testcase></testsuite></testsuites>"""


def _python_first_env() -> dict:
    """The script runs ``python3``: make it this interpreter."""
    path = osp.dirname(sys.executable) + os.pathsep + os.environ['PATH']
    return dict(os.environ, PATH=path)


def _only_python3_env(folder) -> dict:
    """A PATH with ``python3`` (this interpreter) and the shell tools the
    script uses, and no ``python``: a GPU node's bare system."""
    os.makedirs(folder)
    os.symlink(sys.executable, osp.join(folder, 'python3'))
    for tool in ('bash', 'dirname', 'mkdir', 'rm', 'tee', 'timeout'):
        os.symlink(shutil.which(tool), osp.join(folder, tool))
    return dict(os.environ, PATH=str(folder))


@pytest.fixture(scope='module')
def cpu_twin(tmp_path_factory):
    """``bash tools/gpu_check.sh --cpu OUT`` where only python3 exists, the
    tests step capped at 1 s (so it times out): (completed process, OUT)."""
    root = tmp_path_factory.mktemp('gpu_check')
    env = dict(_only_python3_env(root / 'bin'), GPU_CHECK_TESTS_S='1')
    out = root / 'out'
    run = subprocess.run(['bash', SCRIPT, '--cpu', str(out)], env=env,
                         capture_output=True, text=True, timeout=600)
    return run, out


@pytest.fixture(scope='module')
def data_json(cpu_twin):
    return str(cpu_twin[1] / 'data.json')


def test_cpu_twin_runs_every_step_and_summarises_a_timed_out_one(cpu_twin):
    run, out = cpu_twin
    summary = json.loads((out / 'summary.json').read_text())
    assert run.returncode == 1, (run.stdout + run.stderr)[-3000:]
    # The figure that matters most first; each step under its own cap.
    assert list(summary['steps']) == ['benchmark', 'tests', 'data']
    steps = summary['steps']
    assert steps['tests']['timed_out'] and steps['tests']['cap_s'] == 1
    assert 'gpu_check: tests timed out after 1 s' in run.stdout
    for name in ('benchmark', 'data'):  # not held up by the hung step
        assert steps[name]['exit_code'] == 0, (out / f'{name}.log').read_text()
    assert summary['problems'][0] == 'tests: timed out after 1 s'
    assert summary['step']['batch_size'] == 2
    assert summary['step']['mvp_vs_stock'] > 0
    assert summary['data']['workers'] == 1
    assert 'summary.json' in run.stdout.splitlines()[-1]


def test_data_benchmark_writes_its_json(data_json):
    with open(data_json) as f:
        result = json.load(f)
    data = result['data']
    for key in ('ours_img_per_s_per_worker', 'stock_img_per_s_per_worker',
                'exact_img_per_s_per_worker'):
        assert data[key] > 0
    assert data['ratio'] > 0 and data['workers'] == 1
    assert data['images'] == 4 and data['image_size'] == [500, 375]
    assert data['loader_cores_per_gpu']['ours'] == pytest.approx(
        3000 / data['ours_img_per_s_per_worker'])
    assert set(data['cpu_ms_per_img']) == {'ours', 'exact', 'stock'}
    comparison = data['fast_vs_exact']
    assert comparison['same_crop_boxes'] is True
    assert comparison['psnr_db']['min'] >= PSNR_FULL_DECODE
    assert result['machine']['cpu_count'] >= 1


def test_gpu_check_script_parses():
    subprocess.run(['bash', '-n', SCRIPT], check=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is present')
def test_gpu_check_refuses_without_a_gpu(tmp_path):
    out = tmp_path / 'out'
    result = subprocess.run(['bash', SCRIPT, str(out)], cwd=str(tmp_path),
                            env=_python_first_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert 'no CUDA GPU' in result.stderr and '--cpu' in result.stderr
    # names the interpreter it asked
    assert osp.join(osp.dirname(sys.executable), 'python3') in result.stderr
    assert not out.exists()  # nothing was run


@pytest.mark.parametrize('failed', [False, True])
def test_gpu_check_summary(failed, data_json, tmp_path):
    """The summary of the files the three steps write: counts, figures,
    and a non-zero exit on a failed test or a missing part."""
    shutil.copy(data_json, tmp_path / 'data.json')
    step_json = osp.join(REPO, 'docs', 'benchmarks',
                         'vit-b16_cpu2_no-malloc-trim.json')
    shutil.copy(step_json, tmp_path / 'benchmark.json')
    (tmp_path / 'tests.xml').write_text(JUNIT.format(
        failures=int(failed),
        failure='<failure message="boom">trace</failure>' if failed else ''))
    tool = osp.join(REPO, 'tools', 'gpu_check_summary.py')
    result = subprocess.run([sys.executable, tool, str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['ok'] is (not failed)
    assert result.returncode == int(failed)
    tests = summary['tests']
    assert (tests['passed'], tests['skipped']) == (3 - failed, 1)
    assert tests['failed_tests'] == (
        ['tests.test_cuda_paths::test_c[cuda]'] if failed else [])
    assert summary['step']['batch_size'] == 8
    assert summary['step']['mvp_vs_stock'] > 0
    assert summary['data']['ratio'] > 0

    os.remove(tmp_path / 'benchmark.json')  # a crashed benchmark
    result = subprocess.run([sys.executable, tool, str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert 'no step benchmark' in result.stdout
