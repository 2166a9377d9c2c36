"""The dependency warnings that mvp_mm's own configs trigger are silenced,
narrowly: every other warning, and these with ``-W``, still show."""
import os
import os.path as osp
import subprocess
import sys

from mvp_mm.compat.dependency_warnings import DEPENDENCY_WARNINGS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = ('train.py', 'test.py', 'demo.py', 'export_timm.py', 'benchmark.py',
         'analysis/visualize_attention.py', 'analysis/zero_shot.py')

# Imports mvp_mm, then does what a pre-training and a segmentation run do
# first: load the configs (mmpretrain:: / mmseg:: bases), build the models
# tiny, BEiT's colour jitter, the segmentation pipeline and runtime hooks; then one unrelated
# warning, which must still show.
USE_THE_CONFIGS = r'''
import sys
sys.path.insert(0, {tests!r})
import mvp_mm
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from tiny import tiny_pretrain_cfg
from tiny_downstream import SEG_UPERNET, tiny_segmentation_cfg
MODELS.build(tiny_pretrain_cfg('data', 'work').model)
import numpy as np
from mmpretrain.registry import TRANSFORMS as PRETRAIN_TRANSFORMS
paper = Config.fromfile({paper!r})
jitter, = [step for step in paper.train_dataloader.dataset.pipeline
           if step.type == 'ColorJitter']
PRETRAIN_TRANSFORMS.build(jitter)(dict(img=np.zeros((8, 8, 3), np.uint8)))
seg = tiny_segmentation_cfg(SEG_UPERNET, 'data', 'work', pretrained=None)
init_default_scope('mmseg')
from mmseg.registry import HOOKS, MODELS as SEG_MODELS, TRANSFORMS
from mmseg.registry import VISUALIZERS
SEG_MODELS.build(seg.model)
for step in seg.train_pipeline:
    TRANSFORMS.build(step)
VISUALIZERS.build(seg.visualizer)
HOOKS.build(seg.default_hooks.visualization)
import warnings
warnings.warn('an unrelated warning', UserWarning)
'''


def _python(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO, HF_HUB_OFFLINE='1')
    env.pop('PYTHONWARNINGS', None)
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _shown(stderr: str):
    return [message for message, _, _, _ in DEPENDENCY_WARNINGS
            if message.replace('\\', '') in stderr]


def test_own_configs_trigger_no_dependency_warning():
    script = USE_THE_CONFIGS.format(
        tests=osp.join(REPO, 'tests'),
        paper=osp.join(REPO, 'configs/pretrain/mvp_vit-b16_300e_in1k.py'))
    run = _python('-c', script)
    assert run.returncode == 0, run.stderr[-3000:]
    assert _shown(run.stderr) == []
    assert 'an unrelated warning' in run.stderr

    # With -W the user's filters decide: the same run shows them.
    loud = _python('-W', 'default', '-c', script)
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert len(_shown(loud.stderr)) == len(DEPENDENCY_WARNINGS)


def test_tools_help_prints_no_warning():
    """``--help`` of every tool, in one process (imports are shared)."""
    script = (
        'import runpy, sys\n'
        f'sys.path.insert(0, {osp.join(REPO, "tools")!r})\n'
        f'for tool in {TOOLS!r}:\n'
        f'    sys.argv = [tool, "--help"]\n'
        '    try:\n'
        f'        runpy.run_path({osp.join(REPO, "tools")!r} + "/" + tool,\n'
        '                       run_name="__main__")\n'
        '    except SystemExit:\n'
        '        pass\n')
    run = _python('-c', script)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr == ''
    assert run.stdout.count('usage:') == len(TOOLS)
