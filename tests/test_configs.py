"""Sweep: every config loads, carries custom_imports, and (pretrain) builds
and trains a few iterations tiny with the Runner. Downstream configs are
built tiny in their own test."""
import glob
import math
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from tiny import REPO, tiny_pretrain_cfg

from mvp_mm.utils import make_imagenet_folder

ALL = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                       recursive=True))
PRETRAIN = [c for c in ALL if osp.sep + 'pretrain' + osp.sep in c]


def _name(path):
    return osp.relpath(path, osp.join(REPO, 'configs'))


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet_folder(root, num_classes=2, images_per_class=2,
                         image_size=80)
    return root


@pytest.mark.parametrize('config', ALL, ids=_name)
def test_config_loads_with_custom_imports(config):
    cfg = Config.fromfile(config)
    assert cfg.custom_imports == dict(imports=['mvp_mm'],
                                      allow_failed_imports=False)
    assert 'model' in cfg


@pytest.mark.parametrize('config', PRETRAIN, ids=_name)
def test_pretrain_config_trains_tiny(config, imagenet, tmp_path):
    full = Config.fromfile(config)
    cfg = tiny_pretrain_cfg(imagenet, str(tmp_path), config=config,
                            max_iters=2, batch_size=2)
    runner = Runner.from_cfg(cfg)
    assert type(runner.model).__name__ == full.model.type
    assert full.model.target_generator.pretrained == 'openai' or \
        full.model.target_generator.type != 'CLIPTargetGenerator'
    runner.train()
    assert math.isfinite(
        runner.message_hub.get_scalar('train/loss').current())
    assert osp.isfile(osp.join(str(tmp_path), 'iter_2.pth'))


def test_paper_hyper_parameters_in_the_main_config():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/pretrain/mvp_vit-b16_300e_in1k.py'))
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 1.5e-3
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.param_scheduler[-1].type == 'CosineAnnealingLR'
    assert cfg.model.backbone.layer_scale_init_value == 0.1
    assert cfg.model.backbone.use_shared_rel_pos_bias
    assert cfg.model.target_generator.model_name == 'ViT-B-16-quickgelu'
    mask = [t for t in cfg.train_dataloader.dataset.pipeline
            if t.type == 'BlockwiseMaskGenerator'][0]
    assert (mask.input_size, mask.num_masking_patches) == (14, 75)
    assert cfg.auto_scale_lr.base_batch_size == 2048
    large = Config.fromfile(
        osp.join(REPO, 'configs/pretrain/mvp_vit-l16_300e_in1k.py'))
    assert large.model.backbone.arch == 'large'
    assert large.model.target_generator.model_name == 'ViT-B-16-quickgelu'
    short = Config.fromfile(
        osp.join(REPO, 'configs/pretrain/mvp_vit-b16_100e_in1k.py'))
    assert short.train_cfg.max_epochs == 100
    assert short.param_scheduler[-1].end == 100
