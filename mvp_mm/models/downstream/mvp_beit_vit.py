"""mmpretrain's BEiT ViT that starts from the raw MVP checkpoint."""
from mmpretrain.models import BEiTViT
from mmpretrain.registry import MODELS

from .mvp_checkpoint import load_mvp_checkpoint, split_pretrained_init_cfg


@MODELS.register_module()
class MVPBEiTViT(BEiTViT):
    """``BEiTViT`` (ImageNet fine-tuning / linear probing) for MVP weights.

    The backbone of `MVP <https://arxiv.org/abs/2203.05175>`_ downstream
    classification. It is mmpretrain's ``BEiTViT`` unchanged, except that a
    ``dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')`` in
    ``init_cfg`` reads the raw pre-training checkpoint through
    :func:`load_mvp_checkpoint`: the shared relative position table goes into
    every layer (``use_rel_pos_bias=True``), resized to ``img_size`` if it
    differs, and a missing key or a wrong shape raises. Fine-tuning's
    pooled-feature norm (``ln2``, ``out_type='avg_featmap'``, BEiT) is the
    one backbone part trained from scratch.

    Args:
        init_cfg (dict | list[dict], optional): As ``BEiTViT``'s; its
            ``Pretrained`` entry is the MVP checkpoint. Defaults to None
            (random init, with a warning).
        *args, **kwargs: Those of :class:`mmpretrain.models.BEiTViT`.
    """

    def __init__(self, *args, init_cfg=None, **kwargs) -> None:
        pretrained_cfg, init_cfg = split_pretrained_init_cfg(init_cfg)
        super().__init__(*args, init_cfg=init_cfg, **kwargs)
        self.mvp_pretrained = pretrained_cfg

    def init_weights(self) -> None:
        """Default init, then the MVP checkpoint over it."""
        super().init_weights()
        fresh = [k for k in self.state_dict() if k.startswith('ln2.')] \
            if self.out_type == 'avg_featmap' else []
        load_mvp_checkpoint(self, self.mvp_pretrained, self.patch_resolution,
                            fresh_keys=fresh)
