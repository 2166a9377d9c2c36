"""Export MVP backbones to other libraries' layouts."""
from .timm_beit import mmpretrain_beit_to_timm, timm_metadata

__all__ = ['mmpretrain_beit_to_timm', 'timm_metadata']
