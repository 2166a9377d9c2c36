"""MVP's token-level alignment loss (Eq. 9)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.registry import MODELS


@MODELS.register_module()
class MVPLoss(nn.Module):
    """Minus the mean cosine similarity over CLS and patch tokens (Eq. 9).

    From `MVP <https://arxiv.org/abs/2203.05175>`_:
    ``L = -(<F_cls, G_cls> + sum_m <F_m, G_m>) / (M + 1)``, averaged over the
    batch. Eq. 9 sums over *all* M patches (``patches='all'``, the default).
    BEiT and EVA score masked patches only; ``patches='masked'`` does that:
    CLS plus the masked patches, divided by ``1 + #masked`` per image.
    Computed in float32 whatever the autocast dtype.

    Args:
        patches (str): ``'all'`` (Eq. 9) or ``'masked'``. Defaults to
            ``'all'``.
    """

    def __init__(self, patches: str = 'all') -> None:
        super().__init__()
        if patches not in ('all', 'masked'):
            raise ValueError(
                f"MVPLoss(patches={patches!r}): use 'all' (Eq. 9) or "
                "'masked' (BEiT/EVA style).")
        self.patches = patches

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
        cos = F.cosine_similarity(
            pred.float(), target.float(), dim=-1)  # [B, 1 + M]
        if self.patches == 'all':
            return -cos.mean()
        if mask is None:
            raise ValueError("MVPLoss(patches='masked') needs the mask.")
        weight = torch.cat([cos.new_ones(cos.size(0), 1),
                            mask.flatten(1).to(cos.dtype)], dim=1)  # [B, 1+M]
        per_image = (cos * weight).sum(1) / weight.sum(1)  # [B]
        return -per_image.mean()
