"""Analysis of MVP checkpoints: attention maps, zero-shot probes."""
from .attention_maps import cls_attention_maps, figure_row, overlay_heatmap
from .checkpoint import load_state_dict
from .vit_subjects import (ViTSubject, from_mmpretrain_config, from_open_clip,
                           from_timm, load_vit_subject)

__all__ = [
    'ViTSubject', 'cls_attention_maps', 'figure_row', 'from_mmpretrain_config',
    'from_open_clip', 'from_timm', 'load_state_dict', 'load_vit_subject',
    'overlay_heatmap'
]
