"""A ViT to analyse, from an MVP config + checkpoint or a timm/open_clip name.

One interface for the three so that the analysis tools compare them on the
same images (e.g. MVP vs DINO vs CLIP attention, like the paper's Figure 3).
"""
import inspect
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from PIL import Image
from torch import nn

from mmpretrain.registry import MODELS
from ..models.teachers.pretrained_models import (build_open_clip_model,
                                        build_timm_model)
from .checkpoint import load_state_dict

NO_WEIGHTS = 'none'  # checkpoint value that asks for a random init


@dataclass
class ViTSubject:
    """A ViT ready for analysis.

    Attributes:
        name (str): Shown in figures and reports.
        model (nn.Module): The network, in eval mode.
        forward (Callable): ``[B, 3, S, S]`` normalised images -> anything;
            it must run ``attention``.
        attention (nn.Module): The last block's attention module.
        mean (Tuple[float, ...]): RGB input mean, 0-255 scale.
        std (Tuple[float, ...]): RGB input std, 0-255 scale.
        img_size (int): The square input side ``S``.
        grid (Tuple[int, int]): The patch grid.
        num_prefix_tokens (int): CLS (+ registers) before the patches.
    """
    name: str
    model: nn.Module
    forward: Callable[[torch.Tensor], object]
    attention: nn.Module
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    img_size: int
    grid: Tuple[int, int]
    num_prefix_tokens: int = 1

    def prepare(self, path: str) -> Tuple[np.ndarray, torch.Tensor]:
        """Resize the short side to ``img_size`` (bicubic), centre-crop.

        Returns:
            Tuple[np.ndarray, torch.Tensor]: The crop ``[S, S, 3]`` uint8 RGB
            and the normalised input ``[1, 3, S, S]``.
        """
        image = Image.open(path).convert('RGB')
        scale = self.img_size / min(image.size)
        image = image.resize((max(self.img_size, round(image.width * scale)),
                              max(self.img_size, round(image.height * scale))),
                             Image.BICUBIC)
        left = (image.width - self.img_size) // 2
        top = (image.height - self.img_size) // 2
        crop = np.array(image.crop(
            (left, top, left + self.img_size, top + self.img_size)))
        x = torch.from_numpy(crop).permute(2, 0, 1).float()[None]
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return crop, (x - mean) / std


def _random_init(name: str) -> str:
    """Warn loudly; the name to show, marked as random."""
    MMLogger.get_current_instance().warning(
        f'!!! {name} has RANDOMLY INITIALISED weights (checkpoint '
        f'{NO_WEIGHTS!r}): its attention means nothing. Use for tests only.')
    return f'{name} (random init)'


def from_mmpretrain_config(config: str,
                           checkpoint: str,
                           cfg_options: Optional[dict] = None) -> ViTSubject:
    """The backbone of an mvp_mm / mmpretrain config (MVP pre-training or a
    BEiT classifier), with the ``backbone.*`` weights of ``checkpoint``.

    Args:
        config (str): Config file.
        checkpoint (str): Checkpoint file; ``'none'`` for random weights.
        cfg_options (dict, optional): Overrides merged into the config.

    Raises:
        ValueError: The checkpoint holds no ``backbone.*`` keys, or misses
            or adds any (strict loading: never a silent random init).
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    backbone = MODELS.build(cfg.model.backbone)
    name = osp.splitext(osp.basename(config))[0]
    if checkpoint == NO_WEIGHTS:
        name = _random_init(name)
    else:
        weights = {k[len('backbone.'):]: v
                   for k, v in load_state_dict(checkpoint).items()
                   if k.startswith('backbone.')}
        if not weights:
            raise ValueError(f'{checkpoint!r} has no backbone.* weights; '
                             f'is it a checkpoint of {config!r}?')
        backbone.load_state_dict(weights, strict=True)
    backbone.eval()
    preprocessor = cfg.get('data_preprocessor') or \
        cfg.model.get('data_preprocessor')
    if not preprocessor or 'mean' not in preprocessor:
        raise ValueError(f'{config!r} gives no data_preprocessor mean/std.')
    takes_mask = 'mask' in inspect.signature(backbone.forward).parameters
    forward = (lambda x: backbone(x, mask=None)) if takes_mask else backbone
    patch = backbone.patch_embed.projection.kernel_size[0]
    grid = tuple(backbone.patch_resolution)
    return ViTSubject(
        name=name,
        model=backbone,
        forward=forward,
        attention=backbone.layers[-1].attn,
        mean=tuple(preprocessor['mean']),
        std=tuple(preprocessor['std']),
        img_size=grid[0] * patch,
        grid=grid,
        num_prefix_tokens=backbone.num_extra_tokens)


def from_timm(model_name: str,
              checkpoint: str = 'pretrained',
              model_kwargs: Optional[dict] = None) -> ViTSubject:
    """A timm ViT (e.g. DINO, ``vit_base_patch16_224.dino``).

    Args:
        model_name (str): timm model name with its pretrained tag.
        checkpoint (str): ``'pretrained'`` (timm's hub weights), a local
            weight file, or ``'none'``. Defaults to ``'pretrained'``.
        model_kwargs (dict, optional): Extra ``timm.create_model`` kwargs.
    """
    name = model_name
    if checkpoint == NO_WEIGHTS:
        name = _random_init(model_name)
    pretrained = {NO_WEIGHTS: None, 'pretrained': True}.get(checkpoint,
                                                            checkpoint)
    model = build_timm_model(
        model_name, pretrained, what='timm',
        fix=f'pass that file instead of {checkpoint!r} (e.g. --compare '
        f'timm:{model_name} /path/to/{{file}})',
        **dict(model_kwargs or {}, num_classes=0)).eval()
    cfg = model.pretrained_cfg
    return ViTSubject(
        name=name,
        model=model,
        forward=model.forward_features,
        attention=model.blocks[-1].attn,
        mean=tuple(255 * m for m in cfg['mean']),
        std=tuple(255 * s for s in cfg['std']),
        img_size=model.patch_embed.img_size[0],
        grid=tuple(model.patch_embed.grid_size),
        num_prefix_tokens=model.num_prefix_tokens)


def from_open_clip(model_name: str,
                   checkpoint: str = 'openai',
                   model_overrides: Optional[dict] = None) -> ViTSubject:
    """An open_clip vision tower (e.g. ``ViT-B-16-quickgelu``, ``openai``).

    Args:
        model_name (str): open_clip architecture name.
        checkpoint (str): A pretrained tag, a local file, or ``'none'``.
            Defaults to ``'openai'``.
        model_overrides (dict, optional): Model config overrides.
    """
    name = f'{model_name} ({checkpoint})'
    if checkpoint == NO_WEIGHTS:
        name = _random_init(model_name)
    pretrained = None if checkpoint == NO_WEIGHTS else checkpoint
    visual = build_open_clip_model(
        model_name, pretrained, what='open_clip',
        fix=f'pass that file instead of {checkpoint!r} (e.g. --compare '
        f'open_clip:{model_name} /path/to/{{file}})',
        overrides=model_overrides).visual.eval()
    return ViTSubject(
        name=name,
        model=visual,
        forward=visual,
        attention=visual.transformer.resblocks[-1].attn,
        mean=tuple(255 * m for m in visual.image_mean),
        std=tuple(255 * s for s in visual.image_std),
        img_size=visual.image_size[0],
        grid=tuple(visual.grid_size),
        num_prefix_tokens=1)


def load_vit_subject(model: str,
                     checkpoint: str,
                     cfg_options: Optional[dict] = None,
                     model_kwargs: Optional[dict] = None) -> ViTSubject:
    """``model`` is a config file, ``timm:NAME`` or ``open_clip:NAME``.

    Args:
        model (str): What to load.
        checkpoint (str): See :func:`from_mmpretrain_config`,
            :func:`from_timm`, :func:`from_open_clip`.
        cfg_options (dict, optional): Config overrides (config files only).
        model_kwargs (dict, optional): Constructor overrides (timm /
            open_clip only; e.g. tiny models in tests).
    """
    family, _, name = model.partition(':')
    if family == 'timm' and name:
        return from_timm(name, checkpoint, model_kwargs)
    if family == 'open_clip' and name:
        return from_open_clip(name, checkpoint, model_kwargs)
    if not osp.isfile(model):
        raise FileNotFoundError(
            f'{model!r} is neither a config file nor timm:NAME / '
            'open_clip:NAME.')
    return from_mmpretrain_config(model, checkpoint, cfg_options)

