"""Downstream backbones that load the raw MVP pre-training checkpoint:
``MVPBEiTViT`` (mmpretrain, classification) and ``MVPBEiT`` (mmseg,
segmentation)."""
from .mvp_beit_seg import MVPBEiT
from .mvp_beit_vit import MVPBEiTViT
from .mvp_checkpoint import (convert_mvp_state_dict, load_mvp_checkpoint,
                             resize_relative_position_table)

__all__ = [
    'MVPBEiT', 'MVPBEiTViT', 'convert_mvp_state_dict', 'load_mvp_checkpoint',
    'resize_relative_position_table'
]
