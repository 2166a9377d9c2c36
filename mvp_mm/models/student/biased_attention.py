"""Softmax attention with a trainable additive bias, for the CPU."""
import torch


class BiasedAttention(torch.autograd.Function):
    """``softmax(q k^T * scale + bias) v`` with gradients for all four.

    The CPU fast path of `MVP <https://arxiv.org/abs/2203.05175>`_'s student
    attention (BEiT's relative position bias is a parameter, so it needs a
    gradient). On the CPU, ``F.scaled_dot_product_attention`` computes that
    case with its reference ("math") implementation: a chain of autograd
    ops, plus a scan for fully masked rows. This is the same maths in five
    batched matmuls and one softmax, written once for forward and backward
    (the textbook attention backward, e.g. FlashAttention's Algorithm 2,
    https://arxiv.org/abs/2205.14135, without tiling):

    - forward: ``S = (q * scale) k^T + bias``, ``P = softmax(S)``,
      ``O = P v``; keeps ``P`` (as the reference path does);
    - backward: ``dV = P^T dO``, ``dP = dO v^T``,
      ``dS = P * (dP - rowsum(dP * P))``, ``dbias = sum_batch dS``,
      ``dq = dS k * scale``, ``dk = dS^T (q * scale)``.

    Use it through :func:`biased_attention`.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: torch.Tensor, scale: float) -> torch.Tensor:
        B, H, N, D = q.shape
        q_scaled = (q * scale).reshape(B * H, N, D)  # [B * H, N, D]
        k = k.reshape(B * H, N, D)
        v = v.reshape(B * H, N, D)
        attn = torch.bmm(q_scaled, k.transpose(1, 2))  # [B * H, N, N]
        attn.view(B, H, N, N).add_(bias)
        attn = attn.softmax(dim=-1)
        out = torch.bmm(attn, v)  # [B * H, N, D]
        ctx.save_for_backward(q_scaled, k, v, attn)
        ctx.scale = scale
        ctx.shape = (B, H, N, D)
        return out.view(B, H, N, D)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        q_scaled, k, v, attn = ctx.saved_tensors
        B, H, N, D = ctx.shape
        grad_out = grad_out.reshape(B * H, N, D)
        grad_v = torch.bmm(attn.transpose(1, 2), grad_out)
        grad_attn = torch.bmm(grad_out, v.transpose(1, 2))  # [B * H, N, N]
        grad_scores = torch._softmax_backward_data(grad_attn, attn, -1,
                                                   attn.dtype)
        grad_bias = None
        if ctx.needs_input_grad[3]:
            grad_bias = grad_scores.view(B, H, N, N).sum(0)  # [H, N, N]
        grad_q = torch.bmm(grad_scores, k).mul_(ctx.scale)
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q_scaled)
        return (grad_q.view(B, H, N, D), grad_k.view(B, H, N, D),
                grad_v.view(B, H, N, D), grad_bias, None)


def biased_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     bias: torch.Tensor, scale: float) -> torch.Tensor:
    """``softmax(q k^T * scale + bias) v`` (see :class:`BiasedAttention`).

    Args:
        q, k, v (torch.Tensor): ``[B, heads, N, C / heads]``.
        bias (torch.Tensor): ``[heads, N, N]``, same dtype as ``q``.
        scale (float): The logits' scale.

    Returns:
        torch.Tensor: ``[B, heads, N, C / heads]``.
    """
    return BiasedAttention.apply(q, k, v, bias, scale)
