"""The paper's evaluation pipeline end to end, tiny, on generated data in the
real on-disk formats: MVP pre-training -> ImageNet fine-tuning + top-1 ->
linear probing -> UperNet on an ADE20K folder + mIoU. Every step starts from
the previous step's checkpoint file, through the real tools (Runner,
tools/train.py, tools/test.py, mmseg's own train.py; tools/dist_train.sh
needs CUDA: mmengine's pytorch launcher calls torch.cuda.set_device)."""
import json
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from tiny import REPO
from tiny_downstream import (CLS_FINETUNE, CLS_LINEAR, SEG_CROP, SEG_UPERNET,
                             assert_backbone_is_pretrained,
                             tiny_classification_cfg, tiny_mvp_pretrain_cfg,
                             tiny_segmentation_cfg)

import mmseg
from mvp_mm.utils import make_ade20k_folder, make_imagenet_folder


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet_folder(root, num_classes=2, images_per_class=4,
                         image_size=80, split='train')
    make_imagenet_folder(root, num_classes=2, images_per_class=2,
                         image_size=80, split='val', seed=1)
    return root


@pytest.fixture(scope='module')
def pretrained(imagenet, tmp_path_factory):
    """Step 1: MVP pre-training, 2 iterations; its checkpoint file and
    state dict."""
    work_dir = str(tmp_path_factory.mktemp('pretrain'))
    Runner.from_cfg(tiny_mvp_pretrain_cfg(imagenet, work_dir)).train()
    path = osp.join(work_dir, 'iter_2.pth')
    return path, torch.load(path)['state_dict']


def _backbone(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith('backbone.')}


class _RecordBackboneAtStart(Hook):
    """The backbone as training starts (after init_weights and loading)."""

    def before_train(self, runner):
        self.state = {
            k: v.detach().clone()
            for k, v in runner.model.backbone.state_dict().items()
        }


def _run_tool(script: str, args: list, monkeypatch) -> None:
    """Run a command-line tool as ``python script args`` would, in this
    process (saves importing the stack again)."""
    monkeypatch.setattr(sys, 'argv', [script] + args)
    runpy.run_path(script, run_name='__main__')


def _metrics_from_test_tool(config, checkpoint, tmp_path, monkeypatch):
    out = str(tmp_path / 'metrics.json')
    _run_tool(osp.join(REPO, 'tools', 'test.py'),
              [config, checkpoint, '--out', out, '--work-dir',
               str(tmp_path / 'test')], monkeypatch)
    with open(out) as file:
        return json.load(file)


def test_fine_tune_from_pretraining_then_top1(imagenet, pretrained, tmp_path,
                                               monkeypatch):
    path, pretrain_state = pretrained
    work_dir = str(tmp_path / 'finetune')
    cfg = tiny_classification_cfg(CLS_FINETUNE, imagenet, work_dir, path)
    runner = Runner.from_cfg(cfg)
    start = _RecordBackboneAtStart()
    runner.register_hook(start)
    runner.train()
    assert_backbone_is_pretrained(start.state, pretrain_state,
                          fresh=('ln2.weight', 'ln2.bias'))
    trained = runner.model.backbone.state_dict()
    assert not torch.equal(trained['layers.3.attn.qkv.weight'],
                           start.state['layers.3.attn.qkv.weight'])
    val_top1 = runner.message_hub.get_scalar('val/accuracy/top1').current()

    # Step 3: evaluate the fine-tuned checkpoint with tools/test.py.
    config = str(tmp_path / 'finetune_tiny.py')
    cfg.dump(config)
    metrics = _metrics_from_test_tool(config, osp.join(work_dir, 'iter_3.pth'),
                                      tmp_path, monkeypatch)
    assert metrics['accuracy/top1'] == pytest.approx(val_top1)
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_linear_probing_keeps_the_pretrained_backbone(imagenet, pretrained,
                                                      tmp_path):
    path, pretrain_state = pretrained
    cfg = tiny_classification_cfg(CLS_LINEAR, imagenet, str(tmp_path), path,
                                  max_iters=2)
    runner = Runner.from_cfg(cfg)
    head_before = runner.model.head.layers.head.weight.detach().clone()
    runner.train()
    assert_backbone_is_pretrained(runner.model.backbone.state_dict(), pretrain_state)
    assert not torch.equal(runner.model.head.layers.head.weight, head_before)
    assert 'val/accuracy/top1' in runner.message_hub.log_scalars


@pytest.fixture(scope='module')
def ade20k(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ADEChallengeData2016'))
    names = make_ade20k_folder(root, num_train=4, num_val=2,
                               image_size=(96, 128))
    assert len(names['validation']) == 2
    return root


@pytest.fixture
def seg_config(ade20k, pretrained, tmp_path):
    """The tiny UperNet config as a file, with lr 0 so that the trained
    checkpoint's backbone is exactly what was loaded at the start."""
    cfg = tiny_segmentation_cfg(SEG_UPERNET, ade20k, str(tmp_path / 'seg'),
                                pretrained='')
    cfg.optim_wrapper.optimizer.lr = 0.0
    path = str(tmp_path / 'upernet_tiny.py')
    cfg.dump(path)
    return path


def test_upernet_on_ade20k_then_miou(pretrained, seg_config, tmp_path,
                                     monkeypatch):
    path, pretrain_state = pretrained
    work_dir = str(tmp_path / 'train')
    _run_tool(osp.join(REPO, 'tools', 'train.py'),
              [seg_config, '--pretrained', path, '--work-dir', work_dir],
              monkeypatch)
    checkpoint = osp.join(work_dir, 'iter_2.pth')
    state = torch.load(checkpoint)['state_dict']
    window = (SEG_CROP // 16, SEG_CROP // 16)
    assert_backbone_is_pretrained(_backbone(state), pretrain_state, window)
    assert any(k.startswith('decode_head.') for k in state)

    metrics = _metrics_from_test_tool(seg_config, checkpoint, tmp_path,
                                      monkeypatch)
    assert 0 <= metrics['mIoU'] <= 100


def test_config_runs_under_mmseg_own_train_tool(pretrained, seg_config,
                                                tmp_path):
    path, pretrain_state = pretrained
    # A fresh interpreter: mvp_mm gets registered by custom_imports only.
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
    work_dir = str(tmp_path / 'mmseg')
    result = subprocess.run(
        [sys.executable, tool, seg_config, '--work-dir', work_dir,
         '--cfg-options', f'model.backbone.init_cfg.checkpoint={path}'],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(osp.join(work_dir, 'iter_2.pth'))['state_dict']
    window = (SEG_CROP // 16, SEG_CROP // 16)
    assert_backbone_is_pretrained(_backbone(state), pretrain_state, window)
