"""tools/export_timm.py: an MVP backbone as timm's BEiT, same features."""
import json
import os
import stat

import pytest
import timm
import torch
from mmengine.config import Config
from safetensors import safe_open
from timm.models.beit import gen_relative_position_index

from mmpretrain.registry import MODELS
from mvp_mm.export import mmpretrain_beit_to_timm
from tiny import IMG, PRETRAIN_CFG, run_tool

TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2,
                 feedforward_channels=64)


def tiny_backbone(**overrides):
    cfg = dict(Config.fromfile(PRETRAIN_CFG).model.backbone)
    cfg.update(arch=TINY_ARCH, img_size=IMG, **overrides)
    backbone = MODELS.build(cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # no zero tables / unit gammas that hide mix-ups
        for param in backbone.parameters():
            param.normal_(0, 0.2)
    backbone.eval()
    return backbone


def test_exported_backbone_gives_the_same_features_in_timm(tmp_path):
    backbone = tiny_backbone()
    checkpoint = str(tmp_path / 'iter_4.pth')
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(16, 32)  # ignored, not backbone
    torch.save(dict(meta=dict(), state_dict=state), checkpoint)
    out = str(tmp_path / 'mvp_tiny.safetensors')
    umask = os.umask(0o022)
    try:
        run_tool('export_timm.py', checkpoint, out)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644  # like other files

    with safe_open(out, 'pt') as f:
        meta = f.metadata()
        keys = set(f.keys())
    # The shared table is expanded into every block, the mask token dropped.
    assert {'blocks.0.attn.relative_position_bias_table',
            'blocks.1.attn.relative_position_bias_table'} <= keys
    assert not any('mask_token' in k or 'rel_pos_bias.' in k for k in keys)
    kwargs = json.loads(meta['timm_kwargs'])
    assert meta['timm_model'] == 'beit_base_patch16_224'
    assert kwargs['embed_dim'] == 32 and kwargs['img_size'] == IMG
    # The documented user path: timm's own pretrained loading, strict.
    model = timm.create_model(
        meta['timm_model'], pretrained=True,
        pretrained_cfg_overlay=dict(file=out, num_classes=0), **kwargs)
    model.eval()
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        expected = backbone(x, mask=None)[0]  # [B, 1 + M, C], final norm
        got = model.forward_features(x)
    assert got.shape == expected.shape == (2, 1 + (IMG // 16)**2, 32)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_paper_students_map_to_timm_model_names():
    for arch, name in [('base', 'beit_base_patch16_224'),
                       ('large', 'beit_large_patch16_224')]:
        cfg = dict(Config.fromfile(PRETRAIN_CFG).model.backbone, arch=arch)
        with torch.device('meta'):
            backbone = MODELS.build(cfg)
        state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
        state['backbone.rel_pos_bias.relative_position_index'] = \
            gen_relative_position_index((14, 14))  # a real, not meta, index
        _, got_name, kwargs = mmpretrain_beit_to_timm(state)
        assert got_name == name
        assert 'embed_dim' not in kwargs  # timm's own architecture


def test_export_refuses_keys_timm_cannot_hold():
    state = {f'backbone.{k}': v
             for k, v in tiny_backbone().state_dict().items()}
    state['backbone.ln2.weight'] = torch.ones(32)
    with pytest.raises(ValueError, match='ln2'):
        mmpretrain_beit_to_timm(state)
    with pytest.raises(ValueError, match='No backbone'):
        mmpretrain_beit_to_timm({'head.fc.weight': torch.ones(1)})
