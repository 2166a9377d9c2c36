"""BEiT attention on PyTorch's fused scaled-dot-product attention kernel."""
from typing import Optional

import torch
import torch.nn.functional as F

from mmpretrain.models.utils import BEiTAttention

from .biased_attention import biased_attention


class FusedBEiTAttention(BEiTAttention):
    """mmpretrain's ``BEiTAttention`` computed by
    ``F.scaled_dot_product_attention``.

    Part of the fast path of `MVP <https://arxiv.org/abs/2203.05175>`_'s
    student. Same parameters, buffers and state-dict keys as the parent (it
    only overrides :meth:`forward`), so checkpoints load into either. The
    relative position bias (the layer's own table and/or the backbone's
    shared one) is handed to the kernel as an additive float mask,
    ``softmax(q k^T * scale + bias) v``, exactly what the parent computes in
    separate matmul / add / softmax / matmul steps. On CUDA that selects the
    memory-efficient kernel, which returns the bias gradient as well (no
    ``[B, heads, N, N]`` attention matrix kept for the backward pass). On
    CPU, PyTorch has no fused kernel that returns a bias gradient, so a
    trainable bias takes :func:`~mvp_mm.models.student.biased_attention.
    biased_attention` (same maths, one autograd node); without gradients
    (frozen, ``no_grad``) the fused CPU kernel runs.

    See https://pytorch.org/docs/stable/generated/
    torch.nn.functional.scaled_dot_product_attention.html

    Args: those of :class:`mmpretrain.models.utils.BEiTAttention`.
    """

    @classmethod
    def from_attention(cls, attn: BEiTAttention) -> 'FusedBEiTAttention':
        """The same attention (same parameters and keys), fused.

        Args:
            attn (BEiTAttention): A built mmpretrain attention; its
                parameters and buffers are taken over, not copied (the
                two share their module and parameter tables: use only the
                returned one afterwards).

        Returns:
            FusedBEiTAttention: The fused attention.
        """
        fused = cls.__new__(cls)
        fused.__dict__.update(attn.__dict__)
        return fused

    def forward(self,
                x: torch.Tensor,
                rel_pos_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Self-attention with relative position bias.

        Args:
            x (torch.Tensor): Tokens ``[B, N, C]``.
            rel_pos_bias (torch.Tensor, optional): The backbone's shared
                relative position bias ``[num_heads, N, N]``.

        Returns:
            torch.Tensor: ``[B, N, C]``.
        """
        B, N, C = x.shape
        if self.bias == 'qv_bias':
            qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias),
                                  self.v_bias))
            qkv = F.linear(x, self.qkv.weight, qkv_bias)  # [B, N, 3C]
        else:
            qkv = self.qkv(x)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(
            2, 0, 3, 1, 4).unbind(0)  # each [B, heads, N, C / heads]
        bias = self._attention_bias(rel_pos_bias)  # [heads, N, N] or None
        if bias is not None:
            bias = bias.to(q.dtype)
        dropout = self.attn_drop.p if self.training else 0.
        if _needs_biased_attention(q, bias, dropout):
            x = biased_attention(q, k, v, bias, self.scale)
        else:
            x = F.scaled_dot_product_attention(
                q, k, v,
                attn_mask=None if bias is None else bias.unsqueeze(0),
                dropout_p=dropout,
                scale=self.scale)  # [B, heads, N, C / heads]
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))

    def _attention_bias(
            self,
            rel_pos_bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The layer's own and the shared relative position bias, summed."""
        bias = rel_pos_bias
        if self.relative_position_bias_table is not None:
            num_tokens = self.window_size[0] * self.window_size[1] + 1
            own = self.relative_position_bias_table[
                self.relative_position_index.view(-1)].view(
                    num_tokens, num_tokens, -1)  # [N, N, heads]
            own = own.permute(2, 0, 1)  # [heads, N, N]
            bias = own if bias is None else own + bias
        return bias


def _needs_biased_attention(q: torch.Tensor, bias: Optional[torch.Tensor],
                            dropout: float) -> bool:
    """A trainable bias on CPU: no fused SDPA kernel returns its gradient."""
    return (bias is not None and bias.requires_grad and not q.is_cuda
            and dropout == 0. and torch.is_grad_enabled())
