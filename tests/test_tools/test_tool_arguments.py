"""Every tool answers ``--help`` and reports a wrong argument before it
imports the stack (torch, mmengine, mvp_mm): at once, before any model is
built or config dumped (tools/argument_checks.py). Speed is not timed here;
what makes it fast is checked: no heavy module is imported."""
import os.path as osp
import subprocess
import sys

import pytest
from tiny import REPO

DEMO_CFG = 'configs/pretrain/mvp_vit-tiny-p16_6e_demo.py'
SEG_CFG = 'configs/segmentation/upernet_vit-b16_mvp-pre_512x512_160k_ade20k.py'
TOOLS = ('train.py', 'test.py', 'demo.py', 'benchmark.py', 'benchmark_knn.py',
         'export_timm.py', 'make_shards.py', 'analysis/zero_shot.py',
         'analysis/visualize_attention.py')
HEAVY = ('torch', 'mmengine', 'mvp_mm', 'numpy', 'open_clip')


def _run(tool: str, *args: str):
    """``python -X importtime tools/TOOL ARGS`` from the repository root:
    (exit code, stdout, stderr without the import lines, imported
    top-level modules)."""
    run = subprocess.run(
        [sys.executable, '-X', 'importtime', osp.join('tools', tool), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    imports, errors = set(), []
    for line in run.stderr.splitlines():
        if line.startswith('import time:'):
            imports.add(line.rsplit('|', 1)[1].strip().split('.')[0])
        else:
            errors.append(line)
    return run.returncode, run.stdout, '\n'.join(errors), imports


@pytest.mark.parametrize('tool', TOOLS)
def test_help_imports_nothing_heavy(tool):
    code, out, _, imports = _run(tool, '--help')
    assert code == 0 and 'usage:' in out
    assert not imports & set(HEAVY), sorted(imports & set(HEAVY))


@pytest.mark.parametrize('tool, args, message', [
    ('train.py', ['configs/pretrain/mvp_vit-b16_300e_in1K.py'],
     "config file 'configs/pretrain/mvp_vit-b16_300e_in1K.py' does not "
     'exist. Did you mean configs/pretrain/mvp_vit-b16_300e_in1k.py?'),
    ('train.py', [SEG_CFG, '--pretrained', 'work_dirs/none/epoch_300.pth'],
     "argument --pretrained: checkpoint 'work_dirs/none/epoch_300.pth' "
     'does not exist'),
    ('train.py', [DEMO_CFG, '--bogus'], 'unrecognized arguments: --bogus'),
    ('train.py', [DEMO_CFG, '--accumulate', '0'],
     "argument --accumulate: '0' is not a whole number of 1 or more"),
    ('train.py', [DEMO_CFG, '--cfg-options', 'model'],
     "--cfg-options: ['model'] are not KEY=VALUE pairs"),
    ('test.py', [DEMO_CFG, 'nowhere.pth'],
     "argument checkpoint: checkpoint 'nowhere.pth' does not exist (the "
     'working directory holds no *.pth file)'),
    ('benchmark.py', ['mvp_vit-b16_300e_in1k.py'],
     'Did you mean configs/pretrain/mvp_vit-b16_300e_in1k.py?'),
    ('make_shards.py', ['data/nowhere', 'shards'],
     "argument src: SRC 'data/nowhere' is not a folder"),
    ('benchmark_knn.py', ['--json', 'nowhere/knn.json'],
     "cannot write 'nowhere/knn.json'"),
    ('export_timm.py', ['nowhere.pth', 'out.safetensors'],
     "checkpoint 'nowhere.pth' does not exist"),
    ('analysis/zero_shot.py', [DEMO_CFG, 'README.md', '--imagenet', 'nope'],
     "argument --imagenet: ImageNet root 'nope' is not a folder"),
    ('analysis/visualize_attention.py',
     [DEMO_CFG, 'nowhere.pth', 'README.md', '--out', 'x'],
     "checkpoint 'nowhere.pth' does not exist"),
])
def test_wrong_arguments_are_reported_before_any_import(tool, args, message):
    code, out, err, imports = _run(tool, *args)
    assert code == 2 and message in err, err
    assert not imports & set(HEAVY), sorted(imports & set(HEAVY))


def test_make_shards_help_names_the_library_default():
    """make_shards.py keeps the default shard size without importing
    mvp_mm: the two must agree."""
    from mvp_mm.datasets.shard_writer import DEFAULT_SHARD_MB
    _, out, _, _ = _run('make_shards.py', '--help')
    assert f'Default: {DEFAULT_SHARD_MB}' in ' '.join(out.split())
