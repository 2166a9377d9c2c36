"""Which checkpoint ``--resume`` continues from, checked before training."""
import glob
import os.path as osp
import zipfile
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log


def _remote(path: str) -> bool:
    return '://' in path


def _checkpoints_in(folder: str) -> str:
    found = sorted(
        glob.glob(osp.join(folder, '*.pth')), key=osp.getmtime)
    complete = [p for p in found if zipfile.is_zipfile(p)]
    return ', '.join(complete) if complete else 'none'


def check_checkpoint_file(path: str) -> str:
    """Raise a clear error unless ``path`` is a complete checkpoint file.

    A truncated file (a copy or a save that was cut short) lacks the zip
    directory that ``torch.save`` writes last, which is cheap to detect
    without loading it. Remote paths (``s3://`` etc.) are not checked.

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
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f'Checkpoint {path!r} ({osp.getsize(path)} bytes) is not a '
            'complete PyTorch checkpoint: it is truncated (a save or copy '
            'that was cut short) or not a checkpoint at all. Resume from an '
            f'earlier one instead; complete checkpoints in {folder}: '
            f'{_checkpoints_in(folder)}.')
    return path


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint named by ``work_dir/last_checkpoint``, checked.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        str | None: The checkpoint path, or None if the run never saved one.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        path = f.read().strip()
    if not path:
        raise ValueError(
            f'{record} is empty (written by a run killed while saving). '
            'Pass a checkpoint explicitly: `--resume PATH`; complete '
            f'checkpoints in {work_dir}: {_checkpoints_in(work_dir)}.')
    return check_checkpoint_file(path)


def resolve_resume(cfg: Config) -> None:
    """Check ``cfg.load_from``, or fill it with the checkpoint to resume.

    A given ``load_from`` (``--resume PATH``, or a config's ``load_from``)
    must be a complete checkpoint. ``cfg.resume`` with ``load_from=None``
    means "continue from the work dir's last checkpoint" (``--resume`` with
    no path); a run that never saved one starts from scratch, with a
    warning in the log.

    Args:
        cfg (Config): A config after the command-line arguments are merged.
    """
    if cfg.get('load_from') is not None:
        check_checkpoint_file(cfg.load_from)
        return
    if not cfg.get('resume', False):
        return
    cfg.load_from = find_resume_checkpoint(cfg.work_dir)
    if cfg.load_from is None:
        cfg.resume = False
        print_log(
            f'--resume: no checkpoint in {cfg.work_dir} yet '
            '(no last_checkpoint file), so training starts from scratch.',
            logger='current', level=30)
