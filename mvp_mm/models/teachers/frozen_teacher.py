"""A teacher network that is frozen for real, whatever the runner does."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn


IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
TARGET_NORMS = ('none', 'layer_norm')


class FrozenTeacher(BaseModule):
    """Base class for MVP's target generators.

    The teacher network is kept *outside* PyTorch's module tree (it is not a
    registered submodule), which gives, with no special cases elsewhere:

    - no parameters in ``model.parameters()``, so never in the optimizer,
      never in DDP's gradient buckets, never touched by ``init_weights``;
    - no keys in ``state_dict()``, so training checkpoints carry no teacher
      weights, and resuming rebuilds it from its config;
    - ``model.train()`` does not reach it: it stays in eval mode;

    while ``.to()`` / ``.cuda()`` / ``.float()`` still move it (see
    :meth:`_apply`). Subclasses implement :meth:`encode`; :meth:`forward`
    runs it under ``no_grad`` (in bfloat16 autocast on CUDA when
    ``bf16_on_gpu``) and returns float32.

    The teacher receives the *student's* input; :meth:`normalize` maps it
    to the teacher's own mean/std with one precomputed affine map
    (:class:`MVP` passes in the data preprocessor's statistics through
    :meth:`set_input_normalization`; ImageNet's until then).

    ``target_norm='layer_norm'`` normalises every target token to zero mean
    and unit variance over its channels, with no affine parameters
    (``F.layer_norm(t, t.shape[-1:])``, eps 1e-5): MaskDistill's
    "normalized" teacher features and Feature Distillation's "feature
    whitening", which its official code implements as exactly this,
    ``nn.LayerNorm(embed_dim, elementwise_affine=False)``
    (https://github.com/SwinTransformer/Feature-Distillation,
    ``models/feature_distillation.py`` lines 128 and 162).

    Args:
        teacher (nn.Module): The network to freeze.
        teacher_mean (Sequence[float]): The RGB mean the teacher was trained
            with, 0-255 scale.
        teacher_std (Sequence[float]): Its RGB std, 0-255 scale.
        bf16_on_gpu (bool): Autocast to bfloat16 on CUDA. Defaults to True.
        target_norm (str): ``'none'`` (MVP, Eq. 7) or ``'layer_norm'``
            (non-affine, per token). Defaults to ``'none'``.
        init_cfg (dict, optional): Unused, kept for the OpenMMLab interface.
    """

    def __init__(self,
                 teacher: nn.Module,
                 teacher_mean: Sequence[float],
                 teacher_std: Sequence[float],
                 bf16_on_gpu: bool = True,
                 target_norm: str = 'none',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if target_norm not in TARGET_NORMS:
            raise ValueError(
                f'target_norm={target_norm!r}: use one of {TARGET_NORMS} '
                "('layer_norm' is Feature Distillation's \"whitening\" and "
                "MaskDistill's normalisation).")
        self.target_norm = target_norm
        teacher.eval().requires_grad_(False)
        object.__setattr__(self, 'teacher', teacher)  # not registered
        self.bf16_on_gpu = bf16_on_gpu
        self.teacher_mean = tuple(teacher_mean)
        self.teacher_std = tuple(teacher_std)
        self.set_input_normalization(IMAGENET_MEAN, IMAGENET_STD)

    @property
    def teacher_device(self) -> torch.device:
        return next(self.teacher.parameters()).device

    def _apply(self, fn, *args, **kwargs):
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> 'FrozenTeacher':
        """Keep the teacher in eval mode (dropout, norms) in any mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def init_weights(self) -> None:
        """The teacher's weights come from its own library, never re-init."""

    def set_input_normalization(self, mean: Sequence[float],
                                std: Sequence[float]) -> None:
        """Tell the teacher how its input was normalised.

        Precomputes ``x_teacher = x * scale + shift`` so that
        ``x_teacher = (x * std + mean - teacher_mean) / teacher_std``.

        Args:
            mean (Sequence[float]): RGB mean of the input, 0-255 scale.
            std (Sequence[float]): RGB std of the input, 0-255 scale.
        """
        mean, std = torch.tensor(mean), torch.tensor(std)
        own_mean = torch.tensor(self.teacher_mean)
        own_std = torch.tensor(self.teacher_std)
        scale = (std / own_std).view(1, 3, 1, 1)
        shift = ((mean - own_mean) / own_std).view(1, 3, 1, 1)
        device = self.teacher_device
        self.register_buffer('scale', scale.to(device), persistent=False)
        self.register_buffer('shift', shift.to(device), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The student's normalised input -> the teacher's normalisation."""
        return x * self.scale + self.shift

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token teacher features ``[B, 1 + M, D]`` (CLS first)."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher targets, float32, ``[B, 1 + M, D]`` (CLS first), after
        ``target_norm``."""
        with torch.autocast(
                'cuda', dtype=torch.bfloat16,
                enabled=self.bf16_on_gpu and x.is_cuda):
            targets = self.encode(x).float()
        if self.target_norm == 'layer_norm':
            targets = F.layer_norm(targets, targets.shape[-1:])
        return targets
