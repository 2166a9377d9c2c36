"""Convert an MVP (mmpretrain BEiT) backbone to timm's ``Beit`` layout."""
import json
import re
from typing import Dict, Tuple

import torch
from timm.models.beit import gen_relative_position_index

# mmpretrain BEiT key (after ``backbone.``) -> timm ``Beit`` key.
_LAYER_KEYS = {
    'gamma_1': 'gamma_1',
    'gamma_2': 'gamma_2',
    'ln1': 'norm1',
    'ln2': 'norm2',
    'attn.q_bias': 'attn.q_bias',
    'attn.v_bias': 'attn.v_bias',
    'attn.qkv': 'attn.qkv',
    'attn.proj': 'attn.proj',
    'attn.relative_position_bias_table': 'attn.relative_position_bias_table',
    'ffn.layers.0.0': 'mlp.fc1',
    'ffn.layers.1': 'mlp.fc2',
}
_GLOBAL_KEYS = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.projection': 'patch_embed.proj',
    'ln1': 'norm',
}
# Pre-training only: timm's Beit has no mask token.
_DROPPED = ('mask_token', )
# The two paper students and their timm names (timm's beit.py).
_TIMM_ARCHS = {
    (768, 12, 12, 3072, 16, 224): 'beit_base_patch16_224',
    (1024, 24, 16, 4096, 16, 224): 'beit_large_patch16_224',
}


def _rename(key: str) -> str:
    match = re.fullmatch(r'layers\.(\d+)\.(.+)\.(weight|bias)', key) or \
        re.fullmatch(r'layers\.(\d+)\.(.+)()', key)
    if match:
        index, name, suffix = match.groups()
        if name in _LAYER_KEYS:
            return f'blocks.{index}.{_LAYER_KEYS[name]}' + \
                (f'.{suffix}' if suffix else '')
    else:
        name, _, suffix = key.rpartition('.')
        if name in _GLOBAL_KEYS and suffix in ('weight', 'bias'):
            return f'{_GLOBAL_KEYS[name]}.{suffix}'
        if key in _GLOBAL_KEYS:
            return _GLOBAL_KEYS[key]
    raise ValueError(
        f'Backbone key {key!r} has no counterpart in timm\'s Beit; only '
        'BEiT-style backbones (BEiTPretrainViT / BEiTViT) can be exported.')


def _grid(index: torch.Tensor) -> Tuple[int, int]:
    side = int(round((index.shape[0] - 1)**0.5))
    window = (side, side)
    if not torch.equal(index, gen_relative_position_index(window)):
        raise ValueError(
            'The checkpoint\'s relative_position_index differs from timm\'s '
            f'for a {window} grid; the tables would be read in the wrong '
            'order.')
    return window


def mmpretrain_beit_to_timm(
        state_dict: Dict[str, torch.Tensor]
) -> Tuple[Dict[str, torch.Tensor], str, dict]:
    """Rename an MVP / mmpretrain BEiT backbone into timm's ``Beit``.

    The `MVP <https://arxiv.org/abs/2203.05175>`_ student shares one relative
    position bias table across layers; timm's ``beit_base_patch16_224`` /
    ``beit_large_patch16_224`` hold one table per block (like BEiT's
    fine-tuning, which "expand[s] the shared relative position embedding to
    each layers" in run_class_finetuning.py of
    https://github.com/microsoft/unilm/tree/master/beit), so the shared table
    is copied into each. The final LayerNorm becomes timm's ``norm`` (as in
    BEiT's own pre-training checkpoints), so the model is to be built with
    ``use_fc_norm=False``.

    Args:
        state_dict (Dict[str, torch.Tensor]): A full model state dict
            (``backbone.*`` keys; others such as ``head.*`` are ignored).

    Returns:
        Tuple[Dict[str, torch.Tensor], str, dict]: The timm state dict, the
        timm model name and the ``timm.create_model`` keyword arguments that
        build the matching model (architecture overrides for non-standard
        sizes, ``num_classes=0``, ``use_fc_norm=False``).

    Raises:
        ValueError: No ``backbone.*`` keys, or a key timm's ``Beit`` cannot
            hold (nothing is silently dropped except the pre-training mask
            token).
    """
    backbone = {k[len('backbone.'):]: v for k, v in state_dict.items()
                if k.startswith('backbone.')}
    if not backbone:
        raise ValueError(
            'No backbone.* keys in the checkpoint: pass an MVP pre-training '
            '(or mmpretrain BEiT) checkpoint.')
    depth = 1 + max(int(m.group(1)) for k in backbone
                    for m in [re.match(r'layers\.(\d+)\.', k)] if m)
    shared = backbone.pop('rel_pos_bias.relative_position_bias_table', None)
    indexes = [backbone.pop(k) for k in list(backbone)
               if k.endswith('relative_position_index')]
    if not indexes:
        raise ValueError('The backbone has no relative position bias; '
                         "timm's BEiT needs one.")
    window = _grid(indexes[0])
    out = {}
    for key, value in backbone.items():
        if key not in _DROPPED:
            out[_rename(key)] = value
    if shared is not None:
        for index in range(depth):
            out[f'blocks.{index}.attn.relative_position_bias_table'] = \
                shared.clone()
    embed_dims = out['cls_token'].shape[-1]
    num_heads = out['blocks.0.attn.relative_position_bias_table'].shape[1]
    hidden = out['blocks.0.mlp.fc1.weight'].shape[0]
    patch = out['patch_embed.proj.weight'].shape[-1]
    arch = (embed_dims, depth, num_heads, hidden, patch, window[0] * patch)
    name = _TIMM_ARCHS.get(arch, 'beit_base_patch16_224')
    kwargs = dict(num_classes=0, use_fc_norm=False,
                  use_abs_pos_emb='pos_embed' in out, use_rel_pos_bias=True,
                  init_values=0.1 if 'blocks.0.gamma_1' in out else None)
    if arch not in _TIMM_ARCHS:
        kwargs.update(embed_dim=embed_dims, depth=depth, num_heads=num_heads,
                      mlp_ratio=hidden / embed_dims, patch_size=patch,
                      img_size=window[0] * patch)
    return out, name, kwargs


def timm_metadata(name: str, kwargs: dict) -> Dict[str, str]:
    """safetensors metadata that says how to build the matching timm model."""
    return dict(format='pt', timm_model=name, timm_kwargs=json.dumps(kwargs))
