"""Load the raw MVP pre-training checkpoint into a downstream backbone.

The checkpoint that ``configs/pretrain/*`` writes is a whole-runner file:
``state_dict`` holds ``backbone.*`` (the BEiT-style student, with a mask token
and ONE relative position table shared by all layers, learnt on a 14 x 14
window) and ``head.fc.*``. A downstream backbone (mmpretrain's ``BEiTViT`` for
ImageNet, mmseg's ``BEiT`` for ADE20K at 512 x 512) wants one table per layer,
on its own window, and no mask token. This file converts one into the other and
loads it strictly:

- keep the ``backbone.`` keys and strip the prefix (head, neck, teacher keys
  are not the backbone's and are left out);
- drop what only pre-training uses (``mask_token``) and the relative position
  index buffers (a function of the window, rebuilt by the model);
- copy the shared relative position table into every layer, as BEiT's
  fine-tuning does
  (https://github.com/microsoft/unilm/blob/master/beit/run_class_finetuning.py);
- resize each table to the backbone's window, e.g. 14 x 14 -> 32 x 32 for
  512 x 512 crops (bicubic on the ``[2h-1, 2w-1]`` grid, timm's
  ``resize_rel_pos_bias_table_simple``: BEiT's own geometric-sequence resize
  needs SciPy's ``interp2d``, removed in SciPy 1.14);
- keep layer scale (``gamma_1``/``gamma_2``) as it is;
- a backbone key that the checkpoint does not provide, or a shape that does
  not match, raises: the backbone never trains from a silently random init.
  Keys the checkpoint has but the backbone does not use are reported.
- a checkpoint tensor with NaN or Inf raises, naming it: the backbone never
  fine-tunes from a diverged pre-training run.

Paper: https://arxiv.org/abs/2203.05175
"""
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import CheckpointLoader
from timm.layers import resize_rel_pos_bias_table_simple
from torch import nn

from ...utils.non_finite import check_finite_state_dict

#: Backbone keys only the pre-training student uses.
PRETRAIN_ONLY_KEYS = ('mask_token', )
SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'
TABLE = 'relative_position_bias_table'
INDEX = 'relative_position_index'
#: BEiT tables end with 3 rows: cls -> token, token -> cls, cls -> cls.
NUM_EXTRA_TOKENS = 3
FIX_HINT = ('pass the checkpoint that configs/pretrain/* wrote: '
            '`tools/train.py CONFIG --pretrained PATH` or '
            '`--cfg-options model.backbone.init_cfg.checkpoint=PATH`')


def split_pretrained_init_cfg(
    init_cfg: Union[dict, Sequence[dict], None]
) -> Tuple[Optional[dict], Union[dict, list, None]]:
    """Take the ``type='Pretrained'`` entry out of an ``init_cfg``.

    Args:
        init_cfg (dict | list[dict], optional): A module's ``init_cfg``.

    Returns:
        tuple: ``(pretrained, rest)``: the ``Pretrained`` dict (or None) and
        the other entries (or None), for the parent class.
    """
    if init_cfg is None:
        return None, None
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError(f'init_cfg has {len(pretrained)} Pretrained entries; '
                         'give one checkpoint.')
    rest = [c for c in cfgs if c.get('type') != 'Pretrained']
    return (dict(pretrained[0]) if pretrained else None), (rest or None)


def resize_relative_position_table(table: torch.Tensor,
                                   window_size: Tuple[int, int]
                                   ) -> torch.Tensor:
    """Resize a BEiT relative position table to another window, bicubic.

    Args:
        table (torch.Tensor): ``[(2s-1)^2 + 3, heads]`` for a square
            ``s x s`` source window (3 trailing rows for the CLS token).
        window_size (tuple[int, int]): The target window ``(h, w)``.

    Returns:
        torch.Tensor: ``[(2h-1)(2w-1) + 3, heads]``; ``table`` itself when the
        windows are equal. The 3 CLS rows are kept as they are.
    """
    rows, heads = table.shape
    side = round((rows - NUM_EXTRA_TOKENS)**0.5)
    if side * side != rows - NUM_EXTRA_TOKENS or side % 2 == 0:
        raise ValueError(
            f'A relative position table of {rows} rows is not a square BEiT '
            f'table ((2s-1)^2 + {NUM_EXTRA_TOKENS} rows).')
    height, width = window_size
    target_rows = (2 * height - 1) * (2 * width - 1) + NUM_EXTRA_TOKENS
    return resize_rel_pos_bias_table_simple(
        table.float(), (height, width), (target_rows, heads)).to(table.dtype)


def read_checkpoint(path: str,
                    fix_hint: str = FIX_HINT) -> Dict[str, torch.Tensor]:
    """The ``state_dict`` of a checkpoint file (local path or URI).

    Read by mmengine's ``CheckpointLoader`` (torch's weights-only loading,
    with mvp_mm's allow-list for mmengine runner checkpoints). A tensor with
    NaN or Inf is an error naming it: nothing non-finite reaches a backbone,
    an export or an analysis.

    Args:
        path (str): The ``.pth`` file.
        fix_hint (str): How the caller's user passes the right file; ends
            every error message. Defaults to the downstream configs' flags.

    Returns:
        dict: Its ``state_dict`` (or the file itself if it is one).

    Raises:
        FileNotFoundError: ``path`` is empty or does not exist.
        RuntimeError: The file is unreadable or holds no state dict.
        ValueError: A tensor of the state dict holds NaN or Inf.
    """
    if not path:
        raise FileNotFoundError(
            'The backbone has a Pretrained init_cfg without a checkpoint: '
            + fix_hint + '.')
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(
            f'MVP checkpoint {path!r} does not exist: {fix_hint}.')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(
            path, map_location='cpu', logger='current')
    except Exception as error:
        raise RuntimeError(
            f'Cannot read the MVP checkpoint {path!r} '
            f'({type(error).__name__}: {error}). Is the file complete (not '
            'truncated by an interrupted copy or a full disk) and a .pth '
            'written by tools/train.py?') from error
    state_dict = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise RuntimeError(
            f'{path!r} holds no state_dict of tensors: {fix_hint}.')
    check_finite_state_dict(
        state_dict, f'The checkpoint {path!r}',
        'Use an earlier checkpoint of that run (its training log names the '
        'last checkpoint with finite weights): ' + fix_hint + '.')
    return state_dict


def convert_mvp_state_dict(state_dict: Dict[str, torch.Tensor],
                           target: Dict[str, torch.Tensor],
                           window_size: Tuple[int, int],
                           prefix: str = 'backbone.') -> Tuple[dict, dict]:
    """Turn a pre-training state dict into one for a downstream backbone.

    Args:
        state_dict (dict): The checkpoint's ``state_dict``.
        target (dict): The downstream backbone's own ``state_dict()``
            (names and shapes to convert to).
        window_size (tuple[int, int]): The backbone's patch grid ``(h, w)``.
        prefix (str): The backbone's key prefix in the checkpoint. Defaults
            to ``'backbone.'``.

    Returns:
        tuple: ``(converted, notes)``: the backbone state dict, and what was
        done: ``not_backbone``, ``dropped``, ``expanded``, ``resized`` (lists
        of keys).
    """
    backbone = {k[len(prefix):]: v for k, v in state_dict.items()
                if k.startswith(prefix)}
    if not backbone:
        raise RuntimeError(
            f'No key of the checkpoint starts with {prefix!r} (it has e.g. '
            f'{sorted(state_dict)[:5]}): it is not an MVP checkpoint. '
            f'{FIX_HINT[0].upper() + FIX_HINT[1:]}, or set '
            'init_cfg.prefix to where its backbone keys start.')
    notes = dict(
        not_backbone=sorted(k for k in state_dict if not k.startswith(prefix)),
        dropped=sorted(k for k in backbone
                       if k in PRETRAIN_ONLY_KEYS or k.endswith(INDEX)),
        expanded=[], resized=[])
    for key in notes['dropped']:
        del backbone[key]

    if SHARED_TABLE in backbone and SHARED_TABLE not in target:
        shared = backbone.pop(SHARED_TABLE)
        for key in target:
            if key.endswith('attn.' + TABLE) and key not in backbone:
                backbone[key] = shared.clone()
                notes['expanded'].append(key)

    for key, table in backbone.items():
        if key.endswith(TABLE) and key in target and \
                table.shape != target[key].shape:
            backbone[key] = resize_relative_position_table(table, window_size)
            notes['resized'].append(key)
    return backbone, notes


def load_mvp_checkpoint(backbone: nn.Module,
                        pretrained: Optional[dict],
                        window_size: Tuple[int, int],
                        fresh_keys: Sequence[str] = ()) -> None:
    """Load an MVP checkpoint into ``backbone``, strictly and loudly.

    Args:
        backbone (nn.Module): A downstream BEiT-style backbone.
        pretrained (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH, prefix='backbone.')``; None only warns that the
            backbone stays randomly initialised.
        window_size (tuple[int, int]): The backbone's patch grid ``(h, w)``.
        fresh_keys (Sequence[str]): Backbone keys the downstream task adds
            and trains from scratch by design (e.g. the pooled-feature norm
            of fine-tuning); they may be absent from the checkpoint.
            Defaults to ().

    Raises:
        FileNotFoundError: The checkpoint path is empty or does not exist.
        RuntimeError: The file is unreadable or not an MVP checkpoint, a
            backbone key is missing from it, or a shape does not match.
        ValueError: A tensor of the checkpoint holds NaN or Inf.
    """
    logger = MMLogger.get_current_instance()
    name = type(backbone).__name__
    if pretrained is None:
        logger.warning(
            f'{name}: no Pretrained init_cfg, the backbone is RANDOMLY '
            'initialised. To fine-tune MVP, ' + FIX_HINT + '.')
        return
    path = pretrained.get('checkpoint')
    target = backbone.state_dict()
    converted, notes = convert_mvp_state_dict(
        read_checkpoint(path), target, window_size,
        pretrained.get('prefix', 'backbone.'))

    wanted = [k for k in target if not k.endswith(INDEX)]
    missing = [k for k in wanted if k not in converted and k not in fresh_keys]
    mismatched = [
        f'{k}: checkpoint {tuple(converted[k].shape)} vs backbone '
        f'{tuple(target[k].shape)}' for k in wanted
        if k in converted and converted[k].shape != target[k].shape
    ]
    if missing or mismatched:
        raise RuntimeError(
            f'{name} cannot load {path!r} exactly: '
            f'{len(missing)} backbone keys missing from the checkpoint '
            f'{missing}; {len(mismatched)} shape mismatches {mismatched}. '
            'Is it the pre-training checkpoint of the same architecture '
            '(arch, patch size) as this config, and complete?')
    loaded = {k: v for k, v in converted.items() if k in target}
    unexpected = sorted(k for k in converted if k not in target)
    backbone.load_state_dict(loaded, strict=False)

    logger.info(
        f'{name}: loaded {len(loaded)} backbone tensors from {path!r}; '
        f'shared relative position table copied into '
        f'{len(notes["expanded"])} layers; {len(notes["resized"])} tables '
        f'resized to the {window_size} window; dropped pre-training-only '
        f'keys: {notes["dropped"]}; ignored non-backbone keys: '
        f'{notes["not_backbone"]}; new, trained from scratch: '
        f'{[k for k in wanted if k not in loaded]}.')
    if unexpected:
        logger.warning(f'{name}: checkpoint keys this backbone does not use '
                       f'(left out): {unexpected}.')
