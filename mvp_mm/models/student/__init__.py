"""The student: a BEiT ViT with fused attention (mmpretrain's
``BEiTPretrainViT`` keys)."""
from .biased_attention import biased_attention
from .fused_beit_attention import FusedBEiTAttention
from .fused_beit_layer import FusedBEiTTransformerEncoderLayer
from .fused_beit_pretrain_vit import FusedBEiTPretrainViT

__all__ = [
    'FusedBEiTAttention', 'FusedBEiTPretrainViT',
    'FusedBEiTTransformerEncoderLayer', 'biased_attention'
]
