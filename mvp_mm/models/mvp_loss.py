"""MVP's token-level alignment loss (Eq. 9) and its CLIP-guided relatives."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.registry import MODELS

PATCHES = ('all', 'masked', 'none')
CRITERIA = ('cosine', 'smooth_l1', 'mse')


@MODELS.register_module()
class MVPLoss(nn.Module):
    """Minus the mean cosine over CLS and patch tokens (Eq. 9), or a relative.

    From `MVP <https://arxiv.org/abs/2203.05175>`_:
    ``L = -(<F_cls, G_cls> + sum_m <F_m, G_m>) / (M + 1)``, averaged over the
    batch: the defaults (``patches='all'``, ``cls=True``,
    ``criterion='cosine'``).

    The CLIP-guided masked-image-modelling methods that followed MVP keep
    its student, teacher and one-layer head and change only which tokens are
    scored and how (see ``docs/clip_guided_mim.md``):

    - ``patches``: ``'all'`` (Eq. 9; Feature Distillation), ``'masked'``
      (BEiT, EVA, MaskDistill, dBOT) or ``'none'`` (CLS only);
    - ``cls``: score the CLS token too (MVP, FD) or not (MaskDistill:
      "at the masked positions");
    - ``criterion``: per token, ``'cosine'`` (minus the cosine similarity),
      ``'smooth_l1'`` (``F.smooth_l1_loss`` with threshold ``beta``, mean
      over channels; FD, MaskDistill) or ``'mse'`` (mean squared error over
      channels).

    Each image averages the values of its scored tokens (CLS plus
    ``patches``); the loss is the mean over the images that have a scored
    token. With every token scored this equals the mean over all
    ``B x (1 + M) x D`` elements, as FD's ``SmoothL1Loss().mean()`` computes
    it. Computed in float32 whatever the autocast dtype.

    Args:
        patches (str): ``'all'``, ``'masked'`` or ``'none'``. Defaults to
            ``'all'``.
        cls (bool): Score the CLS token. Defaults to True.
        criterion (str): ``'cosine'``, ``'smooth_l1'`` or ``'mse'``.
            Defaults to ``'cosine'``.
        beta (float, optional): Smooth-L1 threshold between the quadratic
            and the linear part (``criterion='smooth_l1'`` only). Defaults
            to PyTorch's 1.0.
    """

    def __init__(self,
                 patches: str = 'all',
                 cls: bool = True,
                 criterion: str = 'cosine',
                 beta: Optional[float] = None) -> None:
        super().__init__()
        if patches not in PATCHES:
            raise ValueError(
                f"MVPLoss(patches={patches!r}): use 'all' (Eq. 9), 'masked' "
                "(BEiT/EVA/MaskDistill style) or 'none' (CLS only).")
        if patches == 'none' and not cls:
            raise ValueError(
                "MVPLoss(patches='none', cls=False) scores no token: score "
                'the CLS token (cls=True) or some patches.')
        if criterion not in CRITERIA:
            raise ValueError(
                f'MVPLoss(criterion={criterion!r}): use one of {CRITERIA}.')
        if beta is not None and criterion != 'smooth_l1':
            raise ValueError(
                f'MVPLoss(beta={beta}) is the smooth-L1 threshold; it has no '
                f"meaning with criterion={criterion!r}. Drop beta or use "
                "criterion='smooth_l1'.")
        if beta is not None and beta <= 0:
            raise ValueError(f'MVPLoss(beta={beta}) must be > 0.')
        self.patches = patches
        self.cls = cls
        self.criterion = criterion
        self.beta = 1.0 if beta is None else float(beta)

    def per_token(self, pred: torch.Tensor,
                  target: torch.Tensor) -> torch.Tensor:
        """The criterion of every token, float32, ``[B, 1 + M]``."""
        pred, target = pred.float(), target.float()
        if self.criterion == 'cosine':
            return -F.cosine_similarity(pred, target, dim=-1)
        if self.criterion == 'smooth_l1':
            return F.smooth_l1_loss(
                pred, target, reduction='none', beta=self.beta).mean(-1)
        return F.mse_loss(pred, target, reduction='none').mean(-1)

    def token_weights(self, values: torch.Tensor,
                      mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``[B, 1 + M]``: 1 for a scored token, 0 otherwise."""
        batch = values.size(0)
        if self.patches == 'masked':
            if mask is None:
                raise ValueError(
                    "MVPLoss(patches='masked') needs the mask: add a "
                    'BlockwiseMaskGenerator to the pipeline, or score all '
                    "patches (patches='all').")
            patches = mask.flatten(1).to(values.dtype)  # [B, M], 1 = masked
        else:
            patches = values.new_full((batch, values.size(1) - 1),
                                      float(self.patches == 'all'))
        cls = values.new_full((batch, 1), float(self.cls))
        return torch.cat([cls, patches], dim=1)

    def forward(self,
                pred: torch.Tensor,
                target: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred (torch.Tensor): Student predictions ``[B, 1 + M, D]``.
            target (torch.Tensor): Teacher features ``[B, 1 + M, D]``.
            mask (torch.Tensor, optional): ``[B, M]``, 1 = masked. Needed
                for ``patches='masked'``.

        Returns:
            torch.Tensor: Scalar loss.
        """
        values = self.per_token(pred, target)  # [B, 1 + M]
        if self.patches == 'all' and self.cls:
            return values.mean()
        weight = self.token_weights(values, mask)  # [B, 1 + M]
        scored = weight.sum(1)  # [B]
        per_image = (values * weight).sum(1) / scored.clamp(min=1)  # [B]
        return per_image.sum() / (scored > 0).sum().clamp(min=1)
