"""open_clip and timm models with their pretrained weights, for MVP's
teachers (https://arxiv.org/abs/2203.05175), the zero-shot text tower and the
analysis tools.

One set of rules for all of them: a local file is checked before anything is
built; a download from the Hugging Face hub first checks that the hub can be
reached at all (:func:`~mvp_mm.utils.hub.use_hub_offline_if_unreachable`), so
that without network cached weights load at once and missing ones fail at
once, with an error that says how to get them; random weights are drawn from
a fixed seed, so every rank and every run builds the same ones.
"""
import os
import os.path as osp
from typing import Optional, Tuple, Union

import open_clip
import timm
import torch
from mmengine.logging import MMLogger
from open_clip.constants import HF_WEIGHTS_NAME
from torch import nn

from ...utils.hub import (unavailable_weights_message,
                         use_hub_offline_if_unreachable)
from ...utils.open_clip_logs import open_clip_logs_captured

# timm's hub repositories all hold this file (timm loads it first).
TIMM_HUB_WEIGHTS = 'model.safetensors'


def looks_like_path(pretrained: str) -> bool:
    """Whether an open_clip ``pretrained`` value names a file, not a tag."""
    return (os.sep in pretrained or pretrained.startswith('.')
            or pretrained.endswith(('.pt', '.pth', '.bin', '.safetensors')))


def _seeded(build, *args, **kwargs) -> nn.Module:
    """``build(*args, **kwargs)`` with the global RNG seeded to 0 and then
    restored: random weights are the same on every rank and every run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build(*args, **kwargs)


def _open_clip_hub_file(model_name: str,
                        tag: str) -> Tuple[Optional[str], str]:
    """The hub repository and weight file of an open_clip tag."""
    repo_id, filename = osp.split(
        open_clip.get_pretrained_cfg(model_name, tag).get('hf_hub', ''))
    return (repo_id or None), filename or HF_WEIGHTS_NAME


def build_open_clip_model(
        model_name: str,
        pretrained: Optional[str],
        what: str = 'CLIP',
        fix: str = 'set model.target_generator.pretrained=/path/to/{file}',
        fallback_to_random: bool = False,
        overrides: Optional[dict] = None,
        cache_dir: Optional[str] = None) -> nn.Module:
    """An open_clip CLIP (both towers) with the weights asked for.

    Args:
        model_name (str): An open_clip architecture name.
        pretrained (str, optional): An open_clip tag (downloaded from the
            hub, or read from its cache), a local checkpoint file, or
            ``None`` for random weights (seed 0; the caller warns).
        what (str): What the model is, for messages. Defaults to ``'CLIP'``.
        fix (str): How the user passes a local weight file (``{file}`` is
            the hub's file name), for the error. Defaults to the teacher's
            config key.
        fallback_to_random (bool): If the weights cannot be had, warn
            loudly and return the seed-0 random model instead of raising
            (the offline demo). Defaults to False.
        overrides (dict, optional): Keys replacing those of the open_clip
            model config.
        cache_dir (str, optional): open_clip's download cache.

    Returns:
        nn.Module: The open_clip model.

    Raises:
        ValueError: Unknown model name or tag.
        FileNotFoundError: ``pretrained`` names a file that does not exist
            (unless ``fallback_to_random``).
        RuntimeError: The weights could not be had (unless
            ``fallback_to_random``).
    """
    logger = MMLogger.get_current_instance()
    overrides = overrides or {}
    if model_name not in open_clip.list_models():
        close = [m for m in open_clip.list_models()
                 if model_name.split('-')[0].lower() in m.lower()][:8]
        raise ValueError(
            f'Unknown open_clip model_name {model_name!r}. '
            f'Similar names: {close}. All: open_clip.list_models().')
    error = None
    if pretrained is not None and not osp.isfile(pretrained):
        if looks_like_path(pretrained):
            error = FileNotFoundError(
                f'{what} checkpoint file {pretrained!r} does not exist. '
                f'Pass an existing open_clip/OpenAI checkpoint file ('
                f'{fix.format(file="FILE")}), or a tag such as '
                "'openai'.")
        else:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            if pretrained not in tags:
                raise ValueError(
                    f'Unknown pretrained tag {pretrained!r} for open_clip '
                    f'model {model_name!r}. Known tags: {tags}; or pass '
                    'the path of a local checkpoint file.')
            use_hub_offline_if_unreachable()
    if pretrained is not None and error is None:
        try:
            # open_clip's own log lines (ERROR:root:Failed to download ...)
            # are kept off the console: the error below says it, chaining
            # open_clip's exception (which carries the same reason).
            with open_clip_logs_captured():
                model = open_clip.create_model(
                    model_name, pretrained=pretrained, cache_dir=cache_dir,
                    **overrides)
        except Exception as exc:  # network, hub, corrupt file
            repo_id, filename = (None, osp.basename(pretrained)) \
                if osp.isfile(pretrained) \
                else _open_clip_hub_file(model_name, pretrained)
            error = RuntimeError(unavailable_weights_message(
                f'{what} {model_name} {pretrained!r}', repo_id, filename,
                fix, exc, cache_dir))
            error.__cause__ = exc
        else:
            logger.info(f'{what} {model_name} loaded with '
                        f'pretrained={pretrained!r}.')
            return model
    if error is not None:
        if not fallback_to_random:
            raise error
        logger.warning(
            f'!!! {error} Falling back to a RANDOMLY INITIALISED {what} '
            '(fallback_to_random=True, demo mode): it carries no multimodal '
            'semantics.')
    with open_clip_logs_captured():  # 'No pretrained weights loaded': the
        # caller (or the fallback warning above) says so
        return _seeded(open_clip.create_model, model_name, pretrained=None,
                       **overrides)


def build_timm_model(model_name: str,
                     pretrained: Union[bool, str, None],
                     what: str = 'timm',
                     fix: str = 'set model.target_generator.pretrained='
                     '/path/to/{file}',
                     **kwargs) -> nn.Module:
    """A timm model with the weights asked for.

    Args:
        model_name (str): A timm model name with its pretrained tag, e.g.
            ``'vit_base_patch16_224.dino'``.
        pretrained (bool | str | None): ``True``: timm's weights for the
            tag (hub download, or its cache); a path: a local weight file
            (timm layout); ``None`` / ``False``: random weights (seed 0; the
            caller warns).
        what (str): What the model is, for messages. Defaults to ``'timm'``.
        fix (str): How the user passes a local weight file (``{file}`` is
            the hub's file name), for the error. Defaults to the teacher's
            config key.
        **kwargs: ``timm.create_model`` keyword arguments.

    Raises:
        ValueError: Unknown model name.
        FileNotFoundError: ``pretrained`` names a missing file.
        RuntimeError: The weights could not be had.
    """
    if not timm.is_model(model_name.split('.')[0]):
        raise ValueError(
            f'Unknown timm model {model_name!r}. List candidates with '
            "timm.list_models('vit_*', pretrained=True).")
    if isinstance(pretrained, str):
        if not osp.isfile(pretrained):
            raise FileNotFoundError(
                f'{what} weight file {pretrained!r} does not exist: pass an '
                f'existing file (timm layout; {fix.format(file="FILE")}).')
        kwargs['pretrained_cfg_overlay'] = dict(file=pretrained)
    elif pretrained:
        use_hub_offline_if_unreachable()
    try:
        model = _seeded(timm.create_model, model_name,
                        pretrained=bool(pretrained), **kwargs)
    except Exception as exc:  # network, hub, mismatching file
        if not pretrained:
            raise
        cfg = None if isinstance(pretrained, str) else \
            timm.models.get_pretrained_cfg(model_name)
        raise RuntimeError(unavailable_weights_message(
            f'{what} {model_name}', cfg and cfg.hf_hub_id,
            (cfg and cfg.hf_hub_filename) or TIMM_HUB_WEIGHTS, fix,
            exc)) from exc
    if pretrained:
        MMLogger.get_current_instance().info(
            f'{what} {model_name} loaded with pretrained={pretrained!r}.')
    return model
