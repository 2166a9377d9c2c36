"""mmseg's BEiT backbone that starts from the raw MVP checkpoint."""
from typing import Optional

from mmseg.models.backbones import BEiT
from mmseg.registry import MODELS

from .mvp_checkpoint import load_mvp_checkpoint, split_pretrained_init_cfg


@MODELS.register_module()
class MVPBEiT(BEiT):
    """mmseg's ``BEiT`` (UperNet on ADE20K) for MVP weights.

    The backbone of `MVP <https://arxiv.org/abs/2203.05175>`_ semantic
    segmentation: mmseg's ``BEiT`` (one relative position table per layer,
    layer scale, multi-level outputs for ``Feature2Pyramid``) with its
    checkpoint loading replaced by :func:`load_mvp_checkpoint`: the raw
    pre-training checkpoint is loaded exactly, the shared 14 x 14 table of
    224 px pre-training is copied into every layer and resized to the
    window of ``img_size`` (32 x 32 at 512 px) without SciPy's removed
    ``interp2d``, and a missing key or a wrong shape raises.

    Its name contains ``BEiT`` so that mmseg's layer-decay constructors
    (``LearningRateDecayOptimizerConstructor`` with ``decay_type=
    'layer_wise_vit'``, ``LayerDecayOptimizerConstructor``), which pick the
    rule by the backbone's class name, give it BEiT's layer-wise lr decay.

    Args:
        pretrained (str, optional): Checkpoint path, as mmseg's
            ``model.pretrained`` passes it. Defaults to None.
        init_cfg (dict | list[dict], optional): As ``BEiT``'s; its
            ``Pretrained`` entry (``checkpoint``, ``prefix`` defaulting to
            ``'backbone.'``) is the MVP checkpoint. Defaults to None.
        *args, **kwargs: Those of :class:`mmseg.models.backbones.BEiT`.
    """

    def __init__(self,
                 *args,
                 pretrained: Optional[str] = None,
                 init_cfg=None,
                 **kwargs) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('Give the MVP checkpoint either as '
                                 'pretrained or as init_cfg, not both.')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        pretrained_cfg, init_cfg = split_pretrained_init_cfg(init_cfg)
        super().__init__(*args, init_cfg=init_cfg, **kwargs)
        self.mvp_pretrained = pretrained_cfg

    def init_weights(self) -> None:
        """mmseg's BEiT init, then the MVP checkpoint over it."""
        super().init_weights()
        load_mvp_checkpoint(self, self.mvp_pretrained, self.window_size)
