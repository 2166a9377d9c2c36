"""MVP's student: mmpretrain's BEiT pre-training ViT on fused attention."""
from typing import Optional, Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from mmcv.cnn.bricks.drop import DropPath
from torch.utils.checkpoint import checkpoint

from mmpretrain.models import BEiTPretrainViT
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

from .fused_beit_layer import FusedBEiTTransformerEncoderLayer


@MODELS.register_module()
class FusedBEiTPretrainViT(BEiTPretrainViT):
    """``BEiTPretrainViT`` with fused attention and activation checkpointing.

    The student of `MVP <https://arxiv.org/abs/2203.05175>`_, made fast
    without changing what it saves (or, but for drop path, what it
    computes):

    - every layer is a :class:`FusedBEiTTransformerEncoderLayer`: its
      attention is a :class:`FusedBEiTAttention` (fused kernels, the
      relative position bias as additive mask) and each residual update is
      one pass, with drop path applied once per branch as in official BEiT
      (mmpretrain's layer drops the FFN branch twice);
    - ``with_cp=True`` recomputes each layer in the backward pass instead of
      keeping its activations (``torch.utils.checkpoint``, non-reentrant,
      RNG state restored so drop path draws the same masks): less memory for
      ViT-L, at the cost of one more forward;
    - the masked forward does not move the shared bias between devices nor
      blend tokens arithmetically (``torch.where`` picks the mask token);
    - it compiles as one graph (``torch.compile``): the drop-path rates,
      numpy floats from ``np.linspace`` in the parent, which Dynamo would
      treat as data-dependent branches, are made Python floats.

    Same parameters, buffers and state-dict keys as ``BEiTPretrainViT``:
    checkpoints load into mmpretrain's ``BEiTViT`` / mmseg's ``BEiT``
    unchanged.

    Args:
        with_cp (bool): Activation checkpointing in training. Defaults to
            False.
        *args, **kwargs: Those of
            :class:`mmpretrain.models.BEiTPretrainViT`.
    """

    def __init__(self, *args, with_cp: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.with_cp = with_cp
        for i, layer in enumerate(self.layers):
            self.layers[i] = FusedBEiTTransformerEncoderLayer.from_layer(layer)
        for module in self.modules():
            if isinstance(module, DropPath):
                module.drop_prob = float(module.drop_prob)

    def init_weights(self) -> None:
        """The parent's init, with cls and mask tokens truncated at +-1 std.

        Official BEiT draws them with ``trunc_normal_(std=.02, a=-std,
        b=std)`` (https://github.com/microsoft/unilm/blob/768a3c8/beit/
        modeling_pretrain.py#L21-L22, L72-L73); the parent truncates at +-2
        (absolute), i.e. not at all at std 0.02. Linear and Conv2d weights
        follow ``init_cfg`` (the configs pass BEiT's bounds).
        """
        super().init_weights()
        if isinstance(self.init_cfg, dict) and \
                self.init_cfg['type'] == 'Pretrained':
            return
        for token in (self.cls_token, self.mask_token):
            trunc_normal_(token, std=0.02, a=-0.02, b=0.02)

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor]:
        """BEiT's masked forward (or, without ``mask``, ``BEiTViT``'s).

        Args:
            x (torch.Tensor): Images ``[B, 3, H, W]``.
            mask (torch.Tensor, optional): ``[B, h, w]``, 1 = masked.

        Returns:
            Tuple[torch.Tensor]: ``[B, 1 + M, C]`` per output index.
        """
        if mask is None:
            return super().forward(x, mask)
        x, patch_resolution = self.patch_embed(x)  # [B, M, C]
        masked = mask.flatten(1).unsqueeze(-1).bool()  # [B, M, 1], 1 = masked
        x = torch.where(masked, self.mask_token, x)
        x = torch.cat((self.cls_token.expand(x.size(0), -1, -1), x),
                      dim=1)  # [B, 1 + M, C]
        if self.pos_embed is not None:
            x = x + resize_pos_embed(
                self.pos_embed,
                self.patch_resolution,
                patch_resolution,
                mode=self.interpolate_mode,
                num_extra_tokens=self.num_extra_tokens)
        x = self.drop_after_pos(x)
        # [heads, 1 + M, 1 + M]; kept as an attribute like the parent does,
        # for BEiT v2-style necks that read it.
        self.shared_rel_pos_bias = self.rel_pos_bias() \
            if self.rel_pos_bias is not None else None
        recompute = self.with_cp and self.training and torch.is_grad_enabled()
        outs = []
        for i, layer in enumerate(self.layers):
            if recompute:
                x = checkpoint(
                    layer, x, self.shared_rel_pos_bias, use_reentrant=False)
            else:
                x = layer(x, rel_pos_bias=self.shared_rel_pos_bias)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.norm1(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
