"""The MVP algorithm (``mvp.py``, ``mvp_head.py``, ``mvp_loss.py``), its
``student/``, its ``teachers/`` and the ``downstream/`` backbones that load
its checkpoint."""
from .downstream import MVPBEiT, MVPBEiTViT
from .mvp import MVP
from .mvp_head import MVPHead
from .mvp_loss import MVPLoss
from .student import (FusedBEiTAttention, FusedBEiTPretrainViT,
                      FusedBEiTTransformerEncoderLayer, biased_attention)
from .teachers import (CLIPTargetGenerator, FrozenTeacher,
                       TimmTargetGenerator, fold_quick_gelu)

__all__ = [
    'CLIPTargetGenerator', 'FrozenTeacher', 'FusedBEiTAttention',
    'FusedBEiTPretrainViT', 'FusedBEiTTransformerEncoderLayer', 'MVP',
    'MVPBEiT', 'MVPBEiTViT', 'MVPHead', 'MVPLoss', 'TimmTargetGenerator',
    'biased_attention', 'fold_quick_gelu'
]
