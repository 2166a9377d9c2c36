"""CLIP's QuickGELU MLPs as in-place SiLU MLPs, for a frozen tower."""
import torch
from open_clip.transformer import QuickGELU
from torch import nn

QUICK_GELU_SLOPE = 1.702  # QuickGELU(x) = x * sigmoid(1.702 * x)


def fold_quick_gelu(tower: nn.Module) -> int:
    """Rewrite each ``Linear -> QuickGELU -> Linear`` MLP of a frozen tower.

    A fast path for `MVP <https://arxiv.org/abs/2203.05175>`_'s teacher.
    OpenAI's CLIP uses ``QuickGELU(h) = h * sigmoid(1.702 h)``, which
    PyTorch computes in three full-size passes, each allocating a
    ``[B, N, 4C]`` tensor. Since ``QuickGELU(h) = SiLU(1.702 h) / 1.702``,
    the MLP ``W2 QuickGELU(W1 x + b1) + b2`` equals
    ``(W2 / 1.702) SiLU(1.702 W1 x + 1.702 b1) + b2``: the constants move
    into the frozen weights, once, and the activation becomes one in-place
    ``SiLU``. Same function (to float rounding); one pass, no allocation.
    See open_clip's note on QuickGELU's cost,
    https://github.com/mlfoundations/open_clip/blob/main/src/open_clip/transformer.py

    Only for weights that never train again (the rewritten weights are not
    the checkpoint's). MLPs with anything else between the two linears
    (e.g. NormFormer's ``ln``) are left as they are.

    Args:
        tower (nn.Module): A frozen open_clip tower (e.g. ``model.visual``).

    Returns:
        int: The number of MLPs rewritten.
    """
    folded = 0
    for mlp in tower.modules():
        if not isinstance(mlp, nn.Sequential):
            continue
        layers = [m for m in mlp if not isinstance(m, nn.Identity)]
        if [type(m) for m in layers] != [nn.Linear, QuickGELU, nn.Linear]:
            continue
        fc, act, proj = layers
        with torch.no_grad():
            fc.weight.mul_(QUICK_GELU_SLOPE)
            if fc.bias is not None:
                fc.bias.mul_(QUICK_GELU_SLOPE)
            proj.weight.div_(QUICK_GELU_SLOPE)
        name = next(n for n, m in mlp.named_children() if m is act)
        setattr(mlp, name, nn.SiLU(inplace=True))
        folded += 1
    return folded
