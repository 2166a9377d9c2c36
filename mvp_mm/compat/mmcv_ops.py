"""Let ``import mmseg.models`` work with ``mmcv-lite`` (no compiled ops).

mmsegmentation 1.2.2 imports ``mmcv.ops`` unconditionally in four modules
(``san_head``, ``focal_loss``, ``utils/point_sample``,
``utils/mask_classification``), and ``mmcv.ops`` fails to import without the
compiled ``mmcv._ext``. None of the models mvp_mm ships (UperNet, FCN) needs a
compiled op; the two names those modules import have exact pure-PyTorch
forms:

- ``point_sample`` is already pure PyTorch in mmcv (``mmcv/ops/point_sample.py``);
  it is loaded from mmcv's own file.
- ``sigmoid_focal_loss`` is re-written below from its CUDA kernel's formula
  (https://github.com/open-mmlab/mmcv/blob/v2.1.0/mmcv/ops/csrc/common/cuda/sigmoid_focal_loss_cuda_kernel.cuh).

Any other ``mmcv.ops`` name raises ``ModuleNotFoundError`` that says to
install the full ``mmcv``. Nothing happens when compiled ops are importable.
"""
import importlib
import importlib.util
import os.path as osp
import sys
import types
from typing import Optional

import torch
import torch.nn.functional as F

_FALLBACK_ATTR = '__mvp_mm_fallback__'


def sigmoid_focal_loss(input: torch.Tensor,
                       target: torch.Tensor,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight: Optional[torch.Tensor] = None,
                       reduction: str = 'mean') -> torch.Tensor:
    """Pure-PyTorch twin of ``mmcv.ops.sigmoid_focal_loss``.

    Args:
        input (torch.Tensor): Logits of shape ``[N, C]``.
        target (torch.Tensor): Class indices of shape ``[N]`` (long); the
            value ``C`` marks a sample with no positive class.
        gamma (float): Focusing parameter. Defaults to 2.0.
        alpha (float): Positive-class balance. Defaults to 0.25.
        weight (torch.Tensor, optional): Per-class weight ``[C]``.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        torch.Tensor: The loss, ``[N, C]`` for ``reduction='none'``.
    """
    classes = torch.arange(input.size(1), device=input.device)
    positive = target[:, None] == classes  # [N, C]; target == C: none
    prob = input.sigmoid()
    pt = torch.where(positive, prob, 1 - prob)
    alpha_t = torch.where(positive, alpha, 1 - alpha)
    loss = -alpha_t * (1 - pt).pow(gamma) * F.logsigmoid(
        torch.where(positive, input, -input))
    if weight is not None:
        loss = loss * weight.view(1, -1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


def _compiled_ops_available() -> bool:
    return importlib.util.find_spec('mmcv._ext') is not None


def install_mmcv_ops_fallback() -> bool:
    """Install a pure-PyTorch ``mmcv.ops`` when compiled ops are missing.

    Returns:
        bool: True if the fallback is (now) installed, False if the real
        compiled ``mmcv.ops`` is available and was left untouched.
    """
    existing = sys.modules.get('mmcv.ops')
    if existing is not None:
        return bool(getattr(existing, _FALLBACK_ATTR, False))
    if _compiled_ops_available():
        return False

    import mmcv
    ops_dir = osp.join(osp.dirname(mmcv.__file__), 'ops')
    fallback = types.ModuleType('mmcv.ops')
    fallback.__path__ = [ops_dir]  # real submodules stay importable
    fallback.__file__ = __file__
    setattr(fallback, _FALLBACK_ATTR, True)
    sys.modules['mmcv.ops'] = fallback
    mmcv.ops = fallback

    fallback.sigmoid_focal_loss = sigmoid_focal_loss
    fallback.point_sample = importlib.import_module(
        'mmcv.ops.point_sample').point_sample

    def __getattr__(name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        raise ModuleNotFoundError(
            f'mmcv.ops.{name} needs the compiled mmcv ops, but only '
            'mmcv-lite is installed (mvp_mm provides pure-PyTorch '
            'point_sample and sigmoid_focal_loss only). Install the full '
            'mmcv matching your torch/CUDA to use it: '
            'https://mmcv.readthedocs.io/en/latest/get_started/installation.html')

    fallback.__getattr__ = __getattr__
    return True
