"""MVP's one-layer prediction head into the teacher's space (Eq. 8)."""
from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import nn

from mmpretrain.registry import MODELS


@MODELS.register_module()
class MVPHead(BaseModule):
    """One fully-connected layer mapping every token into CLIP's space.

    From `MVP <https://arxiv.org/abs/2203.05175>`_ §3.3.2/§3.4: "only one
    fully-connected layer". :class:`MVP` fills ``out_channels`` from the
    target generator when it is left ``None``.

    Args:
        in_channels (int): Student width. Defaults to 768.
        out_channels (int, optional): Teacher embedding dim.
        loss (dict): The loss config. Defaults to ``dict(type='MVPLoss')``.
        init_cfg (dict, optional): Defaults to truncated normal, std 0.02.
    """

    def __init__(self,
                 in_channels: int = 768,
                 out_channels: Optional[int] = None,
                 loss: dict = dict(type='MVPLoss'),
                 init_cfg: Optional[dict] = dict(
                     type='TruncNormal', layer='Linear', std=0.02, bias=0)
                 ) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_channels is None:
            raise ValueError(
                'MVPHead needs out_channels (the teacher embedding dim); '
                'build it inside MVP, which fills it from the target '
                'generator, or set it explicitly.')
        self.fc = nn.Linear(in_channels, out_channels)
        self.loss_module = MODELS.build(loss)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + M, C]`` student tokens -> ``[B, 1 + M, D]``."""
        return self.fc(feats)

    def loss(self, feats: torch.Tensor, target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
        """Predict every token and compare with the teacher (Eq. 9)."""
        return self.loss_module(self(feats), target, mask)
