"""The frozen CLIP vision tower that produces MVP's targets (Eq. 7)."""
from typing import Optional

import torch
from mmengine.logging import MMLogger
from torch import nn

from mmpretrain.registry import MODELS

from .frozen_teacher import FrozenTeacher
from .pretrained_models import build_open_clip_model
from .quick_gelu_folding import fold_quick_gelu

# Which per-token CLIP feature is the target, from the tower's end backwards.
FEATURES = ('projected', 'ln_post', 'last_block')


@MODELS.register_module()
class CLIPTargetGenerator(FrozenTeacher):
    """CLIP's vision branch as MVP's tokenizer, frozen.

    Implementation of the target side of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_ (Eq. 7): for every
    token (CLS and the M patches) it returns CLIP's feature in the
    multimodal space, i.e. ``ln_post(token) @ proj``. For the CLS token this
    is exactly ``open_clip``'s ``encode_image``.

    ``features`` picks an earlier point of the same tower for the methods
    that followed MVP (``docs/clip_guided_mim.md``): ``'ln_post'``, the
    width-``W`` tokens after the final LayerNorm, before the projection
    (Feature Distillation's official code: ``encode_image_featuremap`` then
    ``ln_post``); ``'last_block'``, the raw output of the last residual
    block. ``target_norm`` (see :class:`FrozenTeacher`) is applied after.

    The tower is built with open_clip. It receives the *student's* input
    and re-normalises it to CLIP's own mean/std. See :class:`FrozenTeacher`
    for that and for what "frozen" guarantees. Being frozen, its QuickGELU
    MLPs are rewritten once into the same function with an in-place SiLU
    (:func:`~mvp_mm.models.teachers.quick_gelu_folding.fold_quick_gelu`).

    Args:
        model_name (str): An open_clip architecture name. OpenAI weights need
            QuickGELU. Defaults to ``'ViT-B-16-quickgelu'``.
        pretrained (str, optional): An open_clip pretrained tag (e.g.
            ``'openai'``, ``'laion2b_s34b_b88k'``) or a local checkpoint file.
            ``None`` builds a randomly initialised CLIP (tests only; logged
            loudly). Defaults to ``'openai'``.
        fallback_to_random (bool): If the weights cannot be had (no file, no
            network), log a loud warning and use a randomly initialised CLIP
            instead of raising. Only the offline demo config sets it.
            Defaults to False.
        model_overrides (dict, optional): Keys that replace those of the
            open_clip model config (e.g. a tiny ``vision_cfg`` for tests).
        features (str): ``'projected'`` (Eq. 7, ``output_dim`` wide),
            ``'ln_post'`` or ``'last_block'`` (both ``width`` wide).
            Defaults to ``'projected'``.
        target_norm (str): ``'none'`` or ``'layer_norm'`` (see
            :class:`FrozenTeacher`). Defaults to ``'none'``.
        bf16_on_gpu (bool): Run the tower in bfloat16 autocast on CUDA.
            Defaults to True.
        cache_dir (str, optional): open_clip's download cache directory.
        init_cfg (dict, optional): Unused; the weights come from open_clip.
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16-quickgelu',
                 pretrained: Optional[str] = 'openai',
                 fallback_to_random: bool = False,
                 model_overrides: Optional[dict] = None,
                 features: str = 'projected',
                 target_norm: str = 'none',
                 bf16_on_gpu: bool = True,
                 cache_dir: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if features not in FEATURES:
            raise ValueError(
                f'CLIPTargetGenerator(features={features!r}): use one of '
                f"{FEATURES} ('projected' is MVP's Eq. 7).")
        visual = self._build_visual(model_name, pretrained,
                                    fallback_to_random, model_overrides or {},
                                    cache_dir)
        fold_quick_gelu(visual)
        super().__init__(
            visual,
            teacher_mean=[255 * m for m in visual.image_mean],
            teacher_std=[255 * s for s in visual.image_std],
            bf16_on_gpu=bf16_on_gpu,
            target_norm=target_norm,
            init_cfg=init_cfg)
        self.model_name = model_name
        self.features = features
        self.embed_dims = visual.transformer.width
        self.out_dims = visual.output_dim if features == 'projected' \
            else self.embed_dims
        self.patch_size = visual.patch_size[0]
        self.img_size = visual.image_size[0]

    @staticmethod
    def _build_visual(model_name: str, pretrained: Optional[str],
                      fallback_to_random: bool, overrides: dict,
                      cache_dir: Optional[str]) -> nn.Module:
        """Build the open_clip model and keep only its vision tower."""
        if pretrained is None and not fallback_to_random:
            MMLogger.get_current_instance().warning(
                '!!! CLIPTargetGenerator built with pretrained=None: the '
                'teacher is RANDOMLY INITIALISED. Use this for tests only.')
        visual = build_open_clip_model(
            model_name, pretrained, what='CLIP teacher',
            fallback_to_random=fallback_to_random, overrides=overrides,
            cache_dir=cache_dir).visual
        if (getattr(visual, 'attn_pool', None) is not None
                or getattr(visual, 'pool_type', 'tok') != 'tok'
                or getattr(visual, 'final_ln_after_pool', False)
                or getattr(visual, 'proj', None) is None):
            raise ValueError(
                f'open_clip model {model_name!r} does not pool a CLS token '
                'through ln_post and proj, so it has no per-token features '
                "in CLIP's multimodal space. Use a plain CLIP ViT.")
        return visual

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP features of every token (by default in the multimodal space).

        Args:
            x (torch.Tensor): Images normalised as told by
                :meth:`set_input_normalization`, ``[B, 3, H, W]``.

        Returns:
            torch.Tensor: ``[B, 1 + M, out_dims]``; index 0 is CLS.
        """
        visual = self.teacher
        x = self.normalize(x)  # CLIP's own mean/std
        x = visual._embeds(x)  # [B, 1 + M, W]
        x = visual.transformer(x)
        if self.features == 'last_block':
            return x
        x = visual.ln_post(x)
        if self.features == 'ln_post':
            return x
        return x @ visual.proj  # [B, 1 + M, D]
