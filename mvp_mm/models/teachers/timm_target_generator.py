"""A frozen vision-only timm ViT as MVP's teacher (the paper's Table 5)."""
from typing import Optional, Union

import torch
from mmengine.logging import MMLogger
from torch import nn

from mmpretrain.registry import MODELS

from .frozen_teacher import FrozenTeacher
from .pretrained_models import build_timm_model


@MODELS.register_module()
class TimmTargetGenerator(FrozenTeacher):
    """Per-token features of a frozen timm ViT as MVP's targets.

    The ablation of `MVP <https://arxiv.org/abs/2203.05175>`_ §4.4 / Table 5
    replaces the CLIP tokenizer with a vision-only teacher: "we firstly
    utilize the ViT-B/16 backbone pre-trained by DINO to extract its visual
    feature of each token, and then these features are regarded as the
    prediction target". This class does that for any timm ViT with a class
    token (DINO ``vit_base_patch16_224.dino`` by default): the target of each
    token is the output of the last block after the final norm
    (``forward_features``), CLS first. Extra prefix tokens (registers) are
    dropped so that token ``i`` matches the student's token ``i``.

    Frozen like :class:`CLIPTargetGenerator` (see :class:`FrozenTeacher`); it
    receives the student's normalised input and re-normalises it to the
    model's own ``pretrained_cfg`` mean/std.

    Args:
        model_name (str): A timm model name with its pretrained tag, e.g.
            ``'vit_base_patch16_224.dino'``. Defaults to that.
        pretrained (bool | str | None): ``True``: timm's weights for the tag
            (downloaded from the Hugging Face hub); a path: a local weight
            file (``.pth`` / ``.bin`` / ``.safetensors``, timm layout);
            ``None`` / ``False``: random init (tests only, logged loudly).
            Defaults to True.
        model_kwargs (dict, optional): Extra ``timm.create_model`` keyword
            arguments (e.g. ``img_size`` or a tiny ``embed_dim``/``depth``
            for tests).
        target_norm (str): ``'none'`` or ``'layer_norm'`` (see
            :class:`FrozenTeacher`). Defaults to ``'none'``.
        bf16_on_gpu (bool): Run the teacher in bfloat16 autocast on CUDA.
            Defaults to True.
        init_cfg (dict, optional): Unused; the weights come from timm.
    """

    def __init__(self,
                 model_name: str = 'vit_base_patch16_224.dino',
                 pretrained: Union[bool, str, None] = True,
                 model_kwargs: Optional[dict] = None,
                 target_norm: str = 'none',
                 bf16_on_gpu: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        model = self._build(model_name, pretrained, model_kwargs or {})
        super().__init__(
            model,
            teacher_mean=[255 * m for m in model.pretrained_cfg['mean']],
            teacher_std=[255 * s for s in model.pretrained_cfg['std']],
            bf16_on_gpu=bf16_on_gpu,
            target_norm=target_norm,
            init_cfg=init_cfg)
        self.model_name = model_name
        self.out_dims = model.num_features
        self.embed_dims = model.num_features
        self.patch_size = model.patch_embed.patch_size[0]
        self.img_size = model.patch_embed.img_size[0]
        self.num_prefix_tokens = model.num_prefix_tokens

    @staticmethod
    def _build(model_name: str, pretrained: Union[bool, str, None],
               model_kwargs: dict) -> nn.Module:
        if not pretrained:
            MMLogger.get_current_instance().warning(
                f'!!! TimmTargetGenerator {model_name} built with '
                f'pretrained={pretrained}: the teacher is RANDOMLY '
                'INITIALISED. Use this for tests only.')
        model = build_timm_model(model_name, pretrained, what='timm teacher',
                                 **dict(model_kwargs, num_classes=0))
        if getattr(model, 'cls_token', None) is None \
                or not hasattr(model, 'patch_embed'):
            raise ValueError(
                f'timm model {model_name!r} has no class token / patch '
                'embedding, so it gives no CLS + per-patch features; use a '
                'ViT with a class token (e.g. vit_base_patch16_224.dino).')
        return model

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Final-norm features of the CLS token and every patch.

        Args:
            x (torch.Tensor): Images normalised as told by
                :meth:`set_input_normalization`, ``[B, 3, H, W]``.

        Returns:
            torch.Tensor: ``[B, 1 + M, D]``; index 0 is CLS.
        """
        x = self.normalize(x)  # the teacher's own mean/std
        tokens = self.teacher.forward_features(x)  # [B, P + M, D]
        return torch.cat(
            [tokens[:, :1], tokens[:, self.num_prefix_tokens:]], dim=1)
