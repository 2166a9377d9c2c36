"""MFU's model FLOPs equal what PyTorch's FLOP counter counts."""
import copy
import os.path as osp

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from tiny import IMG, PRETRAIN_CFG, REPO, TINY_BACKBONE, tiny_teacher

from mmengine.config import Config
from mmpretrain.registry import MODELS
from mvp_mm.utils import mvp_step_flops, vit_forward_flops

BATCH = 2


def _counted(fn) -> int:
    """FLOPs of ``fn()`` by the counter: matmuls and convolutions. Under the
    math attention kernel, attention decomposes into countable matmuls."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as c:
        fn()
    return c.get_total_flops()


def _tiny_mvp(config=PRETRAIN_CFG):
    cfg = Config.fromfile(config)
    teacher = tiny_teacher(cfg.model.target_generator.type)
    cfg.merge_from_dict(copy.deepcopy(dict(model=dict(
        backbone=TINY_BACKBONE, target_generator=teacher))))
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('config', [
    PRETRAIN_CFG,
    osp.join(REPO, 'configs', 'pretrain', 'fd-clip_vit-b16_300e_in1k.py')
], ids=['mvp', 'fd-clip (targets not projected)'])
def test_model_flops_equal_counted_flops_of_plain_forwards(config):
    model = _tiny_mvp(config)
    imgs = torch.randn(BATCH, 3, IMG, IMG)
    # mmpretrain's BEiT student (plain attention), unmasked forward.
    stock = MODELS.build(dict(TINY_BACKBONE, type='BEiTPretrainViT',
                              arch=TINY_BACKBONE['arch']))
    student = _counted(lambda: stock(imgs, None))
    # The CLIP tower in train mode: nn.MultiheadAttention's slow path.
    model.target_generator.teacher.train()
    teacher = _counted(lambda: model.target_generator.encode(imgs))
    arch = TINY_BACKBONE['arch']
    tokens = (IMG // 16)**2 + 1
    head = _counted(
        lambda: model.head(torch.randn(BATCH, tokens, arch['embed_dims'])))
    assert student == BATCH * vit_forward_flops(
        (IMG // 16)**2, arch['embed_dims'], arch['num_layers'],
        arch['feedforward_channels'], patch_size=16)
    flops = mvp_step_flops(model, BATCH)
    assert flops['student'] == 3 * (student + head)
    assert flops['teacher'] == teacher
    assert flops['total'] == flops['student'] + flops['teacher']


def test_vit_b16_forward_is_the_known_17_6_gmacs():
    # ViT-B/16 at 224 px: 17.6 GMACs (timm / fvcore), i.e. 35.1 GFLOPs.
    flops = vit_forward_flops(196, 768, 12, 3072, patch_size=16)
    assert round(flops / 2e9, 1) == 17.6


def test_step_flops_of_an_unknown_teacher_is_an_error():
    model = _tiny_mvp(osp.join(REPO, 'configs', 'pretrain',
                               'mvp-dino-guidance_vit-b16_300e_in1k.py'))
    with pytest.raises(TypeError, match='TimmTargetGenerator'):
        mvp_step_flops(model, BATCH)
