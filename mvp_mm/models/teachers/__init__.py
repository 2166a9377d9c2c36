"""The frozen teachers (target generators): CLIP through open_clip,
others through timm."""
from .clip_target_generator import CLIPTargetGenerator
from .frozen_teacher import FrozenTeacher
from .quick_gelu_folding import fold_quick_gelu
from .timm_target_generator import TimmTargetGenerator

__all__ = [
    'CLIPTargetGenerator', 'FrozenTeacher', 'TimmTargetGenerator',
    'fold_quick_gelu'
]
