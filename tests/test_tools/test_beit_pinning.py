"""Pins the values where MVP, MaskDistill and FD-CLIP follow official BEiT.

Each row names the official source line (microsoft/unilm at commit
768a3c873f598bb9b4d4dfb9267b099e35f8fe56, Feature-Distillation for FD), so a
later edit of a config cannot drift from it silently.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import DefaultOptimWrapperConstructor

import mvp_mm  # noqa: F401  (registers FusedBEiTPretrainViT)
from mmpretrain.registry import MODELS

ROOT = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'pretrain')
MVP_B = 'mvp_vit-b16_300e_in1k.py'
MVP_L = 'mvp_vit-l16_300e_in1k.py'
MD = 'maskdistill_vit-b16_300e_in1k.py'
FD = 'fd-clip_vit-b16_300e_in1k.py'
JITTER = dict(type='ColorJitter', brightness=0.4, contrast=0.4,
              saturation=0.4, hue=0.)


def _pipe(cfg, kind):
    return [t for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] == kind]


def _jitter(cfg):
    return [dict(t) for t in _pipe(cfg, 'ColorJitter')]


def _masks(cfg):
    return [t['num_masking_patches']
            for t in _pipe(cfg, 'BlockwiseMaskGenerator')]


def _init(cfg):
    return sorted((i['layer'], i['std'], i['a'], i['b'])
                  for i in cfg.model.backbone.init_cfg
                  if i['type'] == 'TruncNormal')


BEIT_INIT = [('Conv2d', 0.02, -0.02, 0.02), ('Linear', 0.02, -0.02, 0.02)]

# (config, what, getter, value, official source)
TABLE = [
    (MVP_B, 'colour jitter', _jitter, [JITTER],
     'unilm beit/datasets.py:34 ColorJitter(0.4, 0.4, 0.4)'),
    (MD, 'colour jitter', _jitter, [JITTER],
     'unilm beit/datasets.py:34 (MaskDistill is based on BEiT v2, '
     'unilm issue 1579)'),
    (FD, 'colour jitter', _jitter, [],
     'Feature-Distillation data/data_fd.py:24-39 (no jitter)'),
    (MVP_B, 'layer scale', lambda c: c.model.backbone.layer_scale_init_value,
     0.1, 'unilm beit/README.md:120 "0.1 for base"'),
    (MVP_L, 'layer scale', lambda c: c.model.backbone.layer_scale_init_value,
     1e-5, 'unilm beit/README.md:120 "1e-5 for large"; '
     'beit2/PRETRAINING.md:73'),
    (MVP_B, 'init', _init, BEIT_INIT,
     'unilm beit/modeling_pretrain.py:21-22 trunc_normal_(a=-std, b=std)'),
    (MVP_L, 'init', _init, BEIT_INIT,
     'unilm beit/modeling_pretrain.py:21-22'),
    (MD, 'mask patches', _masks, [75],
     'unilm beit/README.md:106, beit2/PRETRAINING.md:22 '
     '--num_mask_patches 75'),
    (MVP_B, 'mask patches', _masks, [75],
     'unilm beit/README.md:106 --num_mask_patches 75'),
    (MD, 'teacher tap', lambda c: c.model.target_generator.features,
     'ln_post', 'unilm beit2/vqkd_teacher/clip/model.py:265-270'),
]


@pytest.fixture(scope='module')
def configs():
    return {name: Config.fromfile(osp.join(ROOT, name))
            for name in (MVP_B, MVP_L, MD, FD)}


@pytest.mark.parametrize('name,what,get,value,source', TABLE,
                         ids=[f'{r[0]}:{r[1]}' for r in TABLE])
def test_config_follows_official_source(configs, name, what, get, value,
                                        source):
    assert get(configs[name]) == value, f'{name} {what}: {source}'


def test_jitter_runs_before_flip_on_the_crop(configs):
    kinds = [t['type'] for t in configs[MVP_B].train_dataloader.dataset.
             pipeline]
    assert kinds.index('RandomResizedCropFromFile') < kinds.index(
        'ColorJitter') < kinds.index('BlockwiseMaskGenerator')


def _tiny_student(cfg):
    backbone = cfg.model.backbone.copy()
    backbone.update(arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                              feedforward_channels=64), img_size=32)
    return MODELS.build(backbone)


@pytest.mark.parametrize('name', [MVP_B, MD])
def test_weight_decay_spares_what_beit_spares(configs, name):
    """BEiT: no decay on 1-D params, biases, pos_embed, cls_token only
    (unilm beit/optim_factory.py:65, beit/modeling_pretrain.py:100-101)."""
    cfg = configs[name]
    model = torch.nn.Module()
    model.backbone = _tiny_student(cfg)
    optim = dict(cfg.optim_wrapper.optimizer, fused=False)
    wrapper = DefaultOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=optim),
        cfg.optim_wrapper.paramwise_cfg.to_dict())(model)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[id(p)] = group['weight_decay']
    for pname, p in model.named_parameters():
        leaf = pname.rsplit('.', 1)[-1]
        beit_exempt = p.ndim == 1 or pname.endswith('.bias') or leaf in (
            'pos_embed', 'cls_token')
        assert (decay[id(p)] == 0) == beit_exempt, pname


def test_student_init_is_truncated_at_one_std(configs):
    torch.manual_seed(0)
    student = _tiny_student(configs[MVP_B])
    student.init_weights()
    for pname, p in student.named_parameters():
        if pname.endswith(('cls_token', 'mask_token')) or (
                p.ndim > 1 and 'relative_position_bias_table' not in pname):
            assert p.abs().max() <= 0.02 + 1e-7, pname
    assert student.cls_token.abs().max() > 0  # drawn, not zero
