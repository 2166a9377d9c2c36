"""CLS attention maps (paper Fig. 3), tools/analysis/visualize_attention.py."""
import glob

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmpretrain.models.utils import BEiTAttention
from mmpretrain.registry import MODELS
from mvp_mm.analysis import (cls_attention_maps, from_mmpretrain_config,
                             from_open_clip, from_timm, overlay_heatmap)
from mvp_mm.utils import make_imagenet_folder
from tiny import GRID, IMG, TINY_CLIP, run_tool, tiny_pretrain_cfg

TINY_VIT = dict(img_size=IMG, embed_dim=32, depth=2, num_heads=2)


class SDPABEiTAttention(BEiTAttention):
    """A fused BEiT attention (no attention matrix), as fast paths use."""

    def forward(self, x, rel_pos_bias=None):
        B, N, C = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias),
                          self.v_bias))
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(
            B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=rel_pos_bias,
                                           scale=self.scale)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


@pytest.fixture
def mvp_files(tmp_path):
    """A tiny MVP config file and a checkpoint with random student weights."""
    cfg = tiny_pretrain_cfg(str(tmp_path / 'in'), str(tmp_path / 'work'))
    cfg.model.target_generator.model_overrides = TINY_CLIP
    config = str(tmp_path / 'tiny_mvp.py')
    cfg.dump(config)
    backbone = MODELS.build(cfg.model.backbone)
    torch.manual_seed(0)
    with torch.no_grad():
        for param in backbone.parameters():
            param.normal_(0, 0.3)
    checkpoint = str(tmp_path / 'iter_4.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in backbone.state_dict().items()}),
               checkpoint)
    return config, checkpoint, backbone


def reference_cls_attention(backbone, x):
    """By hand, from the last block's input: softmax(q k^T s + bias)."""
    inputs = []
    layer = backbone.layers[-1]
    handle = layer.register_forward_hook(
        lambda m, args, out: inputs.append(args))
    with torch.no_grad():
        backbone(x, mask=None)
    handle.remove()
    tokens = inputs[0][0]  # [B, N, C], the last block's input
    rel_pos_bias = backbone.rel_pos_bias()  # [heads, N, N], shared
    attn = layer.attn
    h = layer.ln1(tokens)
    weight = attn.qkv.weight
    dim = weight.shape[1]
    q = F.linear(h, weight[:dim], attn.q_bias)
    k = F.linear(h, weight[dim:2 * dim])
    B, N, _ = q.shape
    q = q.view(B, N, attn.num_heads, -1).transpose(1, 2) * attn.scale
    k = k.view(B, N, attn.num_heads, -1).transpose(1, 2)
    probs = (q @ k.transpose(-2, -1) + rel_pos_bias).softmax(-1)
    return probs[:, :, 0, 1:].mean(1).reshape(B, GRID, GRID)


def test_mvp_attention_equals_hand_computation_also_when_fused(mvp_files):
    config, checkpoint, backbone = mvp_files
    subject = from_mmpretrain_config(config, checkpoint)
    x = torch.randn(2, 3, IMG, IMG)
    backbone.eval()
    expected = reference_cls_attention(backbone, x)
    maps = cls_attention_maps(subject.forward, subject.attention, x,
                              subject.grid)
    assert maps.shape == (2, GRID, GRID)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-4)
    # A fused attention (no matrix ever built) gives the same maps.
    fused = SDPABEiTAttention(32, 2, None, use_rel_pos_bias=False)
    fused.load_state_dict(subject.attention.state_dict())
    subject.model.layers[-1].attn = fused
    maps_fused = cls_attention_maps(subject.forward, fused, x, subject.grid)
    torch.testing.assert_close(maps_fused, expected, atol=1e-5, rtol=1e-4)


def test_wrong_weights_are_refused(mvp_files, tmp_path):
    config, _, _ = mvp_files
    bad = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict={'backbone.cls_token': torch.zeros(1, 1, 32)}),
               bad)
    with pytest.raises(RuntimeError, match='Missing key'):
        from_mmpretrain_config(config, bad)


@pytest.mark.parametrize('family', ['timm', 'open_clip'])
def test_timm_and_open_clip_maps_are_head_averaged_distributions(family):
    if family == 'timm':
        subject = from_timm('vit_base_patch16_224.dino', 'none', TINY_VIT)
        block = subject.attention
    else:
        subject = from_open_clip('ViT-B-16-quickgelu', 'none', TINY_CLIP)
    torch.manual_seed(0)
    x = torch.randn(2, 3, IMG, IMG)
    maps = cls_attention_maps(subject.forward, subject.attention, x,
                              subject.grid, subject.num_prefix_tokens)
    assert maps.shape == (2, GRID, GRID)
    # CLS's row of a softmax over 1 + 16 tokens, minus the CLS column.
    assert (maps > 0).all() and (maps.sum((1, 2)) < 1).all()
    assert not torch.allclose(maps[0], maps[1])
    if family == 'timm':
        assert block.fused_attn  # restored after reading the weights


def test_overlay_colours_the_image():
    image = np.full((32, 32, 3), 128, np.uint8)
    heat = torch.zeros(4, 4)
    heat[0, 0] = 1
    out = overlay_heatmap(image, heat, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    # jet: the hot corner is red, the cold far corner blue.
    assert out[0, 0, 0] > out[0, 0, 2] and out[-1, -1, 2] > out[-1, -1, 0]


def test_visualize_attention_tool_writes_side_by_side_png(mvp_files,
                                                          tmp_path):
    config, checkpoint, _ = mvp_files
    make_imagenet_folder(str(tmp_path / 'imgs'), 1, 2, 96)
    images = sorted(glob.glob(str(tmp_path / 'imgs' / '*' / '*' / '*.JPEG')))
    out = tmp_path / 'out'
    run_tool('analysis/visualize_attention.py', config, checkpoint, *images,
             '--out', out, '--size', 96,
             '--compare', 'timm:vit_base_patch16_224.dino', 'none')
    pngs = sorted(glob.glob(str(out / '*_attention.png')))
    assert len(pngs) == 2
    figure = np.asarray(Image.open(pngs[0]).convert('RGB'))
    assert figure.shape[1:] == (3 * 96, 3)  # input | MVP | DINO
    panels = [figure[32:128, i * 96:(i + 1) * 96].astype(float)
              for i in range(3)]
    assert panels[1].std() > 10  # not blank
    assert np.abs(panels[1] - panels[0]).mean() > 10  # a heat map on top
    # Below: the colour bar (jet, blue to red), its meaning, the caption.
    bar = figure[128 + 4 + 8, 40:-40].astype(int)
    assert bar[0, 2] > bar[0, 0] + 100 and bar[-1, 0] > bar[-1, 2] + 100
    assert figure.shape[0] > 128 + 4 + 16 + 3 * 16  # the text lines
    assert (figure[128 + 24:] < 128).any()  # dark text under the bar


@pytest.mark.parametrize('model, weights, local_file', [
    ('timm:vit_base_patch16_224.dino', 'pretrained', 'model.safetensors'),
    ('open_clip:ViT-B-16-quickgelu', 'openai',
     'open_clip_pytorch_model.bin'),
])
def test_compare_model_without_network_names_the_model_and_the_fix(
        mvp_files, tmp_path, offline_hub, model, weights, local_file):
    config, checkpoint, _ = mvp_files
    make_imagenet_folder(str(tmp_path / 'imgs'), 1, 1, 96)
    image = glob.glob(str(tmp_path / 'imgs' / '*' / '*' / '*.JPEG'))[0]
    with pytest.raises(RuntimeError) as error:
        run_tool('analysis/visualize_attention.py', config, checkpoint,
                 image, '--out', tmp_path / 'out', '--compare', model,
                 weights)
    message = str(error.value)
    assert model.split(':')[1] in message
    assert 'not in the local cache' in message
    assert f'--compare {model} /path/to/{local_file}' in message
