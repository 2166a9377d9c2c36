"""A BEiT encoder layer with fused attention and fused residual branches."""
from typing import Optional

import torch
from mmengine.model import BaseModule
from mmpretrain.models.backbones.beit import BEiTTransformerEncoderLayer
from torch import nn

from .fused_beit_attention import FusedBEiTAttention


class FusedBEiTTransformerEncoderLayer(BEiTTransformerEncoderLayer):
    """mmpretrain's BEiT layer, computed with fewer passes over memory.

    A layer of `MVP <https://arxiv.org/abs/2203.05175>`_'s student. It
    computes official BEiT's block
    (https://github.com/microsoft/unilm/blob/master/beit/modeling_pretrain.py)::

        x = x + drop_path(gamma_1 * attn(ln1(x)))
        x = x + drop_path(gamma_2 * ffn(ln2(x)))

    with the same parameters, buffers and state-dict keys as the parent, and
    two differences from the parent's ``forward``:

    - each residual update is one ``torch.addcmul(x, branch, scale)``, with
      the layer scale and the per-sample drop-path keep mask folded into
      one ``[B, 1, C]`` factor, instead of four full-size passes (multiply,
      divide, multiply, add) and their backward;
    - drop path is applied once per branch, as in official BEiT. The parent
      also drops the FFN branch inside mmcv's ``FFN`` (its
      ``dropout_layer``), so its FFN branch is dropped twice per step.

    The attention is a :class:`FusedBEiTAttention`. Build it from a built
    layer with :meth:`from_layer`.

    Args: those of
        :class:`mmpretrain.models.backbones.beit.BEiTTransformerEncoderLayer`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fuse()

    def init_weights(self) -> None:
        """Leave the FFN to the backbone's ``init_cfg``, as official BEiT.

        mmpretrain's layer re-draws its FFN weights Xavier-uniform (+-0.25
        at width 32); official BEiT initialises every Linear, the MLP's
        included, with its truncated normal and zero bias
        (https://github.com/microsoft/unilm/blob/768a3c8/beit/
        modeling_pretrain.py#L86-L90).
        """
        BaseModule.init_weights(self)

    @classmethod
    def from_layer(cls, layer: BEiTTransformerEncoderLayer
                   ) -> 'FusedBEiTTransformerEncoderLayer':
        """The same layer (same modules, parameters and keys), fused.

        Args:
            layer (BEiTTransformerEncoderLayer): A built mmpretrain layer;
                its modules and parameters are taken over, not copied (the
                two share their module and parameter tables: use only the
                returned one afterwards).

        Returns:
            FusedBEiTTransformerEncoderLayer: The fused layer.
        """
        fused = cls.__new__(cls)
        fused.__dict__.update(layer.__dict__)  # modules, parameters, flags
        fused._fuse()
        return fused

    def _fuse(self) -> None:
        """Fused attention; drop path only in :meth:`residual`."""
        self.attn = FusedBEiTAttention.from_attention(self.attn)
        self.ffn.dropout_layer = nn.Identity()

    def forward(self, x: torch.Tensor,
                rel_pos_bias: Optional[torch.Tensor]) -> torch.Tensor:
        """One encoder layer.

        Args:
            x (torch.Tensor): Tokens ``[B, N, C]``.
            rel_pos_bias (torch.Tensor, optional): The backbone's shared
                relative position bias ``[num_heads, N, N]``.

        Returns:
            torch.Tensor: ``[B, N, C]``.
        """
        x = self.residual(
            x, self.attn(self.ln1(x), rel_pos_bias=rel_pos_bias),
            self.gamma_1)
        return self.residual(x, self.ffn(self.ln2(x)), self.gamma_2)

    def residual(self, x: torch.Tensor, branch: torch.Tensor,
                 gamma: Optional[torch.Tensor]) -> torch.Tensor:
        """``x + drop_path(gamma * branch)`` in one pass.

        Args:
            x (torch.Tensor): The residual stream ``[B, N, C]``.
            branch (torch.Tensor): The branch output ``[B, N, C]``.
            gamma (torch.Tensor, optional): The layer scale ``[C]``.

        Returns:
            torch.Tensor: ``[B, N, C]``.
        """
        scale = gamma  # [C] or None
        drop_prob = getattr(self.drop_path, 'drop_prob', 0.)
        if self.training and drop_prob > 0.:
            keep_prob = 1. - drop_prob
            # mmcv's / timm's drop_path draw: one uniform per sample.
            keep = (keep_prob + torch.rand(
                x.size(0), 1, 1, dtype=x.dtype, device=x.device)).floor_()
            keep = keep.div_(keep_prob)  # [B, 1, 1], 0 = dropped
            scale = keep if gamma is None else keep * gamma  # [B, 1, C]
        if scale is None:
            return x + branch
        return torch.addcmul(x, branch, scale)
