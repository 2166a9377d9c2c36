"""The raw MVP pre-training checkpoint loads exactly into mmpretrain's and
mmseg's downstream backbones, or fails loudly. Models are built with an
explicit ``_scope_``: whichever default scope an earlier test left current."""
import logging

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS
from mvp_mm.models.downstream import resize_relative_position_table

WIDTH, LAYERS, HEADS = 32, 3, 2
ARCH = dict(embed_dims=WIDTH, num_layers=LAYERS, num_heads=HEADS,
            feedforward_channels=2 * WIDTH)


def _keys_cubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Bicubic resampling (Keys, a = -0.75, half-pixel centres, clamped
    borders) as an ``[n_out, n_in]`` matrix: an independent reference."""

    def weight(x, a=-0.75):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.

    matrix = np.zeros((n_out, n_in))
    for out in range(n_out):
        src = (out + 0.5) * n_in / n_out - 0.5
        for k in range(int(np.floor(src)) - 1, int(np.floor(src)) + 3):
            matrix[out, min(max(k, 0), n_in - 1)] += weight(src - k)
    return matrix


def test_table_resize_224_to_512_matches_bicubic_reference():
    heads = 3
    table = torch.randn(27 * 27 + 3, heads)  # 14 x 14 window (224 px)
    resized = resize_relative_position_table(table, (32, 32))  # 512 px
    assert resized.shape == (63 * 63 + 3, heads)
    matrix = _keys_cubic_matrix(27, 63)
    for head in range(heads):
        grid = table[:-3, head].double().numpy().reshape(27, 27)
        expected = matrix @ grid @ matrix.T  # separable bicubic
        np.testing.assert_allclose(
            resized[:-3, head].numpy().reshape(63, 63), expected, atol=1e-5)
    assert torch.equal(resized[-3:], table[-3:])  # CLS rows untouched
    # the table's centre (relative offset 0) stays the centre
    assert torch.allclose(resized[31 * 63 + 31], table[13 * 27 + 13],
                          atol=1e-5)


def test_table_resize_is_identity_at_the_same_window_and_checks_shape():
    table = torch.randn(27 * 27 + 3, 4)
    assert torch.equal(resize_relative_position_table(table, (14, 14)), table)
    with pytest.raises(ValueError, match='not a square BEiT table'):
        resize_relative_position_table(torch.randn(26 * 26 + 3, 4), (8, 8))


@pytest.fixture
def pretrained(tmp_path):
    """A pre-training checkpoint as tools/train.py writes it: random (non
    default) student weights, shared table, mask token, head, extra keys."""
    torch.manual_seed(0)
    student = PRETRAIN_MODELS.build(
        dict(type='BEiTPretrainViT', _scope_='mmpretrain', arch=ARCH,
             img_size=64,
             use_abs_pos_emb=False, use_rel_pos_bias=False,
             use_shared_rel_pos_bias=True, layer_scale_init_value=0.1,
             final_norm=True, out_type='raw'))
    with torch.no_grad():
        for param in student.parameters():
            param.normal_(0, 0.1)
    state = {'backbone.' + k: v for k, v in student.state_dict().items()}
    state['head.fc.weight'] = torch.randn(16, WIDTH)
    state['head.fc.bias'] = torch.randn(16)
    path = str(tmp_path / 'epoch_300.pth')
    torch.save(dict(meta=dict(epoch=300), state_dict=state), path)
    student.eval()
    return path, student, state


def _init(cfg, path):
    return dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path,
                                   prefix='backbone.'))


def _classifier_backbone(path, **kwargs):
    cfg = dict(type='MVPBEiTViT', _scope_='mmpretrain', arch=ARCH,
               img_size=64,
               use_rel_pos_bias=True, use_shared_rel_pos_bias=False)
    cfg.update(kwargs)
    model = PRETRAIN_MODELS.build(_init(cfg, path))
    model.init_weights()
    model.eval()
    return model


def _seg_backbone(path, img_size=64, **kwargs):
    cfg = dict(type='MVPBEiT', _scope_='mmseg', img_size=img_size,
               embed_dims=WIDTH,
               num_layers=LAYERS, num_heads=HEADS, mlp_ratio=2,
               norm_cfg=dict(type='LN', eps=1e-6), out_indices=[LAYERS - 1])
    cfg.update(kwargs)
    model = SEG_MODELS.build(cfg if path is None else _init(cfg, path))
    model.init_weights()
    model.eval()
    return model


def test_classifier_backbone_computes_the_pretrained_network(pretrained):
    path, student, state = pretrained
    model = _classifier_backbone(path, out_type='raw', final_norm=True)
    shared = state['backbone.rel_pos_bias.relative_position_bias_table']
    for i, layer in enumerate(model.layers):
        assert torch.equal(layer.attn.relative_position_bias_table, shared)
        assert torch.equal(layer.gamma_1,
                           state[f'backbone.layers.{i}.gamma_1'])
    for key, value in model.state_dict().items():
        if 'relative_position' not in key:
            assert torch.equal(value, state['backbone.' + key]), key
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images)[0], student(images, None)[0])


def test_fine_tuning_backbone_adds_only_the_pooled_norm(pretrained):
    path, _, state = pretrained
    model = _classifier_backbone(path, out_type='avg_featmap')
    assert torch.equal(model.layers[2].attn.qkv.weight,
                       state['backbone.layers.2.attn.qkv.weight'])
    assert not hasattr(model, 'ln1')  # BEiT: no final norm in fine-tuning
    assert torch.equal(model.ln2.weight, torch.ones(WIDTH))  # new, default


def test_seg_backbone_at_512_analog_resizes_and_matches_at_224_analog(
        pretrained):
    path, student, state = pretrained
    same = _seg_backbone(path, final_norm=True)  # 64 px: pre-training window
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = student(images, None)[0][:, 1:]  # [B, 16, C]
        expected = tokens.transpose(1, 2).reshape(2, WIDTH, 4, 4)
        torch.testing.assert_close(same(images)[0], expected)
    bigger = _seg_backbone(path, img_size=128)  # 8 x 8 window
    shared = state['backbone.rel_pos_bias.relative_position_bias_table']
    want = resize_relative_position_table(shared, (8, 8))
    for layer in bigger.layers:
        assert torch.equal(layer.attn.relative_position_bias_table, want)
        assert layer.attn.relative_position_bias_table.shape == (15 * 15 + 3,
                                                                 HEADS)
    assert torch.equal(bigger.layers[1].gamma_2,
                       state['backbone.layers.1.gamma_2'])
    assert not hasattr(bigger, 'mask_token')


def test_mmseg_pretrained_argument_takes_the_same_route(pretrained):
    path, _, state = pretrained
    model = SEG_MODELS.build(
        dict(type='MVPBEiT', _scope_='mmseg', img_size=64, embed_dims=WIDTH,
             num_layers=LAYERS, num_heads=HEADS, mlp_ratio=2,
             pretrained=path))
    model.init_weights()
    assert torch.equal(model.cls_token, state['backbone.cls_token'])


def _save_without(state, tmp_path, drop):
    state = {k: v for k, v in state.items() if not drop(k)}
    path = str(tmp_path / 'broken.pth')
    torch.save(dict(state_dict=state), path)
    return path


def test_missing_backbone_keys_are_an_error_naming_them(pretrained, tmp_path):
    _, _, state = pretrained
    path = _save_without(state, tmp_path,
                         lambda k: k.startswith('backbone.layers.2.attn.'))
    with pytest.raises(RuntimeError) as error:
        _classifier_backbone(path)
    message = str(error.value)
    assert 'missing from the checkpoint' in message
    assert 'layers.2.attn.qkv.weight' in message
    assert 'layers.2.attn.q_bias' in message
    # the shared table is missing too: every per-layer table is named
    path = _save_without(state, tmp_path, lambda k: 'rel_pos_bias' in k)
    with pytest.raises(RuntimeError, match='layers.0.attn.relative_position'):
        _seg_backbone(path)


def test_wrong_architecture_is_a_shape_error(pretrained):
    path, _, _ = pretrained
    with pytest.raises(RuntimeError) as error:
        _seg_backbone(path, embed_dims=48, num_heads=HEADS)
    assert 'shape mismatches' in str(error.value)
    assert 'cls_token: checkpoint (1, 1, 32) vs backbone (1, 1, 48)' in str(
        error.value)
    with pytest.raises(RuntimeError, match='missing from the checkpoint'):
        _classifier_backbone(path, arch=dict(ARCH, num_layers=LAYERS + 1))


def test_truncated_unreadable_and_foreign_checkpoints(pretrained, tmp_path):
    path, _, state = pretrained
    data = open(path, 'rb').read()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match='truncated'):
        _classifier_backbone(str(truncated))
    foreign = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'encoder.weight': torch.zeros(2)}}, foreign)
    with pytest.raises(RuntimeError, match="starts with 'backbone.'"):
        _classifier_backbone(str(foreign))
    with pytest.raises(FileNotFoundError, match='--pretrained PATH'):
        _classifier_backbone(str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match='without a checkpoint'):
        _seg_backbone('')


class _Messages(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelname, record.getMessage()))


def test_no_pretrained_warns_of_random_init():
    logger = MMLogger.get_current_instance()
    handler = _Messages()
    logger.addHandler(handler)
    try:
        _seg_backbone(None)
    finally:
        logger.removeHandler(handler)
    assert any(level == 'WARNING' and 'RANDOMLY' in message
               for level, message in handler.messages)
