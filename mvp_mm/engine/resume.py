"""Which checkpoint ``--resume`` continues from, checked before training."""
import glob
import io
import logging
import os.path as osp
import pickletools
import re
import zipfile
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from torch.serialization import MAGIC_NUMBER

from mmpretrain.registry import HOOKS

# mmengine's CheckpointHook names: ``filename_tmpl`` by default
STEP_TEMPLATES = ('epoch_{}.pth', 'iter_{}.pth')


def _remote(path: str) -> bool:
    return '://' in path


def _is_legacy_torch_file(path: str) -> bool:
    """True if ``path`` starts like ``torch.save(...,
    _use_new_zipfile_serialization=False)``: a pickled magic number
    (read, never unpickled)."""
    with open(path, 'rb') as f:
        head = io.BytesIO(f.read(64))
    try:
        for opcode, arg, _ in pickletools.genops(head):
            if opcode.name not in ('PROTO', 'FRAME'):
                return arg == MAGIC_NUMBER  # the first value pickled
    except ValueError:  # not a pickle
        return False
    return False


def is_complete_checkpoint(path: str) -> bool:
    """True if ``path`` is a whole ``torch.save`` file.

    The zip format (torch's default) ends with the zip directory, which a
    save or copy cut short lacks: cheap to check without loading. A legacy
    (non-zip) file is recognised by torch's magic number at its start; its
    end cannot be checked without loading it.

    Args:
        path (str): A local file.

    Returns:
        bool: Whether ``path`` is a complete checkpoint file.
    """
    return zipfile.is_zipfile(path) or _is_legacy_torch_file(path)


def _checkpoints_in(folder: str) -> str:
    found = sorted(
        glob.glob(osp.join(glob.escape(folder), '*.pth')), key=osp.getmtime)
    complete = [p for p in found if is_complete_checkpoint(p)]
    return ', '.join(complete) if complete else 'none'


def check_checkpoint_file(path: str) -> str:
    """Raise a clear error unless ``path`` is a complete checkpoint file.

    A truncated zip file (a copy or a save that was cut short) is detected
    without loading it (see :func:`is_complete_checkpoint`). Remote paths
    (``s3://`` etc.) are not checked.

    Args:
        path (str): The checkpoint to resume from.

    Returns:
        str: ``path``, unchanged.
    """
    if _remote(path):
        return path
    folder = osp.dirname(osp.abspath(path))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint {path!r} (--resume PATH / load_from) does not '
            f'exist. Complete checkpoints in {folder}: '
            f'{_checkpoints_in(folder)}. Pass one of them, or use `--resume` '
            "alone to continue from the work dir's last_checkpoint.")
    if not is_complete_checkpoint(path):
        raise ValueError(
            f'Checkpoint {path!r} ({osp.getsize(path)} bytes) is not a '
            'complete PyTorch checkpoint: it is truncated (a save or copy '
            'that was cut short) or not a checkpoint at all. Resume from an '
            f'earlier one instead; complete checkpoints in {folder}: '
            f'{_checkpoints_in(folder)}.')
    return path


def step_of(path: str, template: str) -> Optional[int]:
    """N if ``path``'s file name is ``template`` with N in place of ``{}``
    (``step_of('work/iter_8.pth', 'iter_{}.pth') == 8``), else None."""
    pattern = re.escape(template).replace(re.escape('{}'), '([0-9]+)')
    match = re.fullmatch(pattern, osp.basename(path))
    return int(match.group(1)) if match else None


def checkpoints_by_step(folder: str, template: str) -> Dict[int, str]:
    """``{N: path}`` of the complete checkpoints in ``folder`` named
    ``template`` with N in place of ``{}`` (a ``filename_tmpl``)."""
    found = {}
    pattern = osp.join(glob.escape(folder), template.format('*'))
    for path in glob.glob(pattern):
        step = step_of(path, template)
        if step is not None and is_complete_checkpoint(path):
            found[step] = path
    return found


def newest_complete_checkpoint(folder: str,
                               templates=STEP_TEMPLATES) -> Optional[str]:
    """The complete checkpoint in ``folder`` with the highest step.

    The step is the N in a name written by the checkpoint hook's
    ``filename_tmpl`` (``epoch_N.pth``, ``iter_N.pth``): a file's
    modification time changes when it is copied, its step does not. Where
    files of several templates are present (a run switched from epochs to
    iterations), the highest step of each competes by modification time.

    Args:
        folder (str): Where the checkpoints are.
        templates (Sequence[str]): ``filename_tmpl`` values to look for.
            Defaults to mmengine's ``('epoch_{}.pth', 'iter_{}.pth')``.

    Returns:
        str | None: The path, or None if there is no complete checkpoint.
    """
    tops: List[str] = []
    for template in templates:
        steps = checkpoints_by_step(folder, template)
        if steps:
            tops.append(steps[max(steps)])
    return max(tops, key=osp.getmtime) if tops else None


def _later_checkpoint(recorded: str, templates) -> Optional[str]:
    """A complete checkpoint saved after ``recorded``, or None: of
    ``recorded``'s own series, a higher step written later (a higher step
    written earlier is a stale file of an earlier run); of another series
    (another template: its steps count other things), one written later.
    Of several, the newest."""
    later = []
    for template in templates:
        steps = checkpoints_by_step(osp.dirname(recorded), template)
        if not steps:
            continue
        newest = steps[max(steps)]
        step = step_of(recorded, template)
        if step is not None:
            if max(steps) > step and \
                    osp.getmtime(newest) >= osp.getmtime(recorded):
                later.append(newest)
        elif osp.getmtime(newest) > osp.getmtime(recorded):
            later.append(newest)
    return max(later, key=osp.getmtime) if later else None


def find_resume_checkpoint(work_dir: str,
                           checkpoint_dir: Optional[str] = None,
                           templates=STEP_TEMPLATES) -> Optional[str]:
    """The newest complete checkpoint of the run in ``work_dir``, checked.

    That is the file ``work_dir/last_checkpoint`` names, unless a complete
    checkpoint of a later step was written after it: a run stopped between
    renaming a new checkpoint into place and recording it (see
    :class:`AtomicCheckpointHook`) leaves ``last_checkpoint`` one save
    behind, or, at its first save, absent. The choice and its reason are
    logged.

    Args:
        work_dir (str): The run's work dir.
        checkpoint_dir (str, optional): Where the hook writes checkpoints,
            if not ``work_dir`` (its ``out_dir``). Defaults to None.
        templates (Sequence[str]): The hook's ``filename_tmpl`` values.
            Defaults to mmengine's ``('epoch_{}.pth', 'iter_{}.pth')``.

    Returns:
        str | None: The checkpoint path, or None if the run never saved one.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    recorded = None
    if osp.isfile(record):
        with open(record) as f:
            recorded = f.read().strip()
    if recorded and _remote(recorded):
        return recorded
    if recorded:
        check_checkpoint_file(recorded)
        later = _later_checkpoint(recorded, templates)
        if later is None:
            print_log(f'--resume: {recorded} (named by {record}).',
                      logger='current')
            return recorded
        print_log(
            f'--resume: {later}, not {recorded} which {record} names: '
            f'{osp.basename(later)} is complete and was saved after it (the '
            'run was stopped between saving and recording it, or saved it '
            'inside an epoch without recording it).',
            logger='current', level=logging.WARNING)
        return later
    folder = checkpoint_dir or work_dir
    newest = newest_complete_checkpoint(folder, templates)
    if newest is not None:
        state = 'is empty' if recorded == '' else 'does not exist'
        print_log(
            f'--resume: {newest}, the newest complete checkpoint in '
            f'{folder}: {record} {state} (the run was stopped between saving '
            'a checkpoint and recording it).',
            logger='current', level=logging.WARNING)
        return newest
    if recorded == '':
        raise ValueError(
            f'{record} is empty (written by a run killed while saving) and '
            f'{folder} holds no complete {" / ".join(templates)} file. Pass '
            'a checkpoint explicitly: `--resume PATH`; complete checkpoints '
            f'in {folder}: {_checkpoints_in(folder)}.')
    return None


def _checkpoint_hook_output(cfg: Config) -> tuple:
    """(folder, filename templates) of the config's checkpoint hook, as
    mmengine's CheckpointHook resolves them, and of the checkpoint hooks in
    ``custom_hooks`` that write to the same folder (e.g.
    ``TimedCheckpointHook``, ``SaveOnSignalHook``: series of their own)."""
    hook = cfg.get('default_hooks', {}).get('checkpoint') or {}
    out_dir = _hook_folder(cfg, hook)
    templates = [_hook_template(hook)]
    for custom in cfg.get('custom_hooks', None) or []:
        hook_type = _checkpoint_hook_type(custom)
        if hook_type is None or _hook_folder(cfg, custom) != out_dir:
            continue
        template = _hook_template(
            custom, getattr(hook_type, 'default_filename_tmpl', None))
        if template not in templates:
            templates.append(template)
    return out_dir, tuple(templates)


def _hook_folder(cfg: Config, hook: dict) -> str:
    out_dir = hook.get('out_dir') or cfg.work_dir
    if out_dir != cfg.work_dir:  # mmengine: out_dir/<work dir's name>
        out_dir = osp.join(out_dir, osp.basename(cfg.work_dir.rstrip('/')))
    return out_dir


def _hook_template(hook: dict, default: Optional[str] = None) -> str:
    template = hook.get('filename_tmpl') or default
    if template is None:
        template = STEP_TEMPLATES[0] if hook.get('by_epoch', True) \
            else STEP_TEMPLATES[1]
    return template


def _checkpoint_hook_type(hook) -> Optional[type]:
    """The class of a ``custom_hooks`` entry if it is a ``CheckpointHook``
    (names looked up as mmpretrain's registry does, ``scope.Name`` too)."""
    hook_type = hook.get('type') if isinstance(hook, dict) else None
    if isinstance(hook_type, str):
        hook_type = HOOKS.get(hook_type)
    if isinstance(hook_type, type) and issubclass(hook_type, CheckpointHook):
        return hook_type
    return None


def resolve_resume(cfg: Config) -> None:
    """Check ``cfg.load_from``, or fill it with the checkpoint to resume.

    A given ``load_from`` (``--resume PATH``, or a config's ``load_from``)
    must be a complete checkpoint. ``cfg.resume`` with ``load_from=None``
    means "continue from the newest complete checkpoint of the run in the
    work dir" (``--resume`` with no path, see
    :func:`find_resume_checkpoint`); a run that never saved one starts from
    scratch, with a warning in the log.

    Args:
        cfg (Config): A config after the command-line arguments are merged.
    """
    if cfg.get('load_from') is not None:
        check_checkpoint_file(cfg.load_from)
        return
    if not cfg.get('resume', False):
        return
    out_dir, templates = _checkpoint_hook_output(cfg)
    # and mmengine's other name: checkpoints taken inside the epochs of an
    # epoch-checkpointed run (iter_N.pth) resume it too
    templates += tuple(t for t in STEP_TEMPLATES if t not in templates)
    cfg.load_from = find_resume_checkpoint(
        cfg.work_dir, None if _remote(out_dir) else out_dir, templates)
    if cfg.load_from is None:
        cfg.resume = False
        print_log(
            f'--resume: no checkpoint in {out_dir} yet (no last_checkpoint '
            'file, no complete checkpoint), so training starts from scratch.',
            logger='current', level=logging.WARNING)
