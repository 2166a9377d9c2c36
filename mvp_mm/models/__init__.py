from .biased_attention import biased_attention
from .clip_target_generator import CLIPTargetGenerator
from .downstream import MVPBEiT, MVPBEiTViT
from .frozen_teacher import FrozenTeacher
from .fused_beit_attention import FusedBEiTAttention
from .fused_beit_layer import FusedBEiTTransformerEncoderLayer
from .fused_beit_pretrain_vit import FusedBEiTPretrainViT
from .mvp import MVP
from .mvp_head import MVPHead
from .mvp_loss import MVPLoss
from .quick_gelu_folding import fold_quick_gelu
from .timm_target_generator import TimmTargetGenerator

__all__ = [
    'CLIPTargetGenerator', 'FrozenTeacher', 'FusedBEiTAttention',
    'FusedBEiTPretrainViT', 'FusedBEiTTransformerEncoderLayer', 'MVP',
    'MVPBEiT', 'MVPBEiTViT', 'MVPHead', 'MVPLoss', 'TimmTargetGenerator',
    'biased_attention', 'fold_quick_gelu'
]
