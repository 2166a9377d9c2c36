"""Checkpoints that a killed process can never leave half-written."""
import contextlib
import errno
import logging
import os
import os.path as osp
import shutil
from typing import List

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from mmpretrain.registry import HOOKS

from ..resume import checkpoints_by_step

PARTIAL_SUFFIX = '.partial'
#: What mmengine logs at WARNING on every run, from ``CheckpointHook.
#: before_train`` and ``mmengine.runner.save_checkpoint``: both build a
#: ``FileClient`` they do not use ("it will not be removed util the release
#: of MMEngine1.0"), whose construction announces its own deprecation.
#: Nothing in them is about the user's run.
UNUSED_FILE_CLIENT_NOTICES = (
    '"FileClient" will be deprecated',
    '"HardDiskBackend" is the alias of "LocalBackend"')


class _UnusedFileClientNotices(logging.Filter):
    """Drops :data:`UNUSED_FILE_CLIENT_NOTICES`, and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(UNUSED_FILE_CLIENT_NOTICES)


@contextlib.contextmanager
def _without_unused_file_client_notices(logger: logging.Logger):
    """``logger`` drops :data:`UNUSED_FILE_CLIENT_NOTICES` inside."""
    notices = _UnusedFileClientNotices()
    logger.addFilter(notices)
    try:
        yield
    finally:
        logger.removeFilter(notices)


def fsync_path(path: str) -> None:
    """Flush a file (or a directory entry) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomically(path: str, text: str) -> None:
    """Replace ``path`` by a file holding ``text``, all or nothing."""
    partial = path + PARTIAL_SUFFIX
    try:
        with open(partial, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except OSError:
        _remove_if_present(partial)
        raise


def _remove_if_present(path: str) -> None:
    if osp.isfile(path):
        os.remove(path)


def human_size(num_bytes: int) -> str:
    """``human_size(3 * 2**30) == '3.0 GiB'``."""
    for power, unit in ((40, 'TiB'), (30, 'GiB'), (20, 'MiB'), (10, 'KiB')):
        if num_bytes >= 2**power:
            return f'{num_bytes / 2**power:.1f} {unit}'
    return f'{num_bytes} bytes'


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, safe against being killed mid-save.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_, whose runs last days
    on shared clusters where jobs get killed. mmengine writes
    ``iter_N.pth`` in place, deletes the oldest kept checkpoint *before*
    writing the new one, and rewrites ``last_checkpoint`` in place. A job
    killed at the wrong moment leaves a truncated ``iter_N.pth``, an empty
    ``last_checkpoint``, or (``max_keep_ckpts=1``) no complete checkpoint.
    Here, for checkpoints on a local or network file system:

    1. the checkpoint is written to ``iter_N.pth.partial``, fsynced, then
       renamed to ``iter_N.pth`` (``os.replace`` is atomic on POSIX);
    2. ``last_checkpoint`` is replaced atomically, only after that rename,
       so it only ever names a complete file;
    3. checkpoints beyond ``max_keep_ckpts`` are deleted only after that.

    So the folder needs room for ``max_keep_ckpts + 1`` checkpoints: the
    new one is written in full before the oldest is deleted. A save that
    fails (a full disk, a quota, an I/O error) removes its ``.partial`` and
    raises an error naming the folder, the free space and the fix; the
    previous checkpoints and ``last_checkpoint`` are left as they were.
    ``*.partial`` files left by a killed run are removed when training
    starts. A run killed between the rename (1) and ``last_checkpoint``
    (2) leaves ``last_checkpoint`` one save behind (or, at the first save,
    absent); ``--resume`` (:func:`mvp_mm.engine.find_resume_checkpoint`)
    continues from the newer, complete file. Other storage backends (e.g.
    object stores, which have no rename) fall back to mmengine's
    behaviour. The two deprecation notices that mmengine's ``before_train``
    logs at start and at each save about a ``FileClient`` it builds but
    never uses (:data:`UNUSED_FILE_CLIENT_NOTICES`) are dropped. Same arguments as
    ``CheckpointHook``
    (https://github.com/open-mmlab/mmengine/blob/v0.10.7/mmengine/hooks/checkpoint_hook.py).
    """

    #: The message hub entry (saved in every checkpoint) listing the steps
    #: of the checkpoints kept under ``max_keep_ckpts``: mmengine's name.
    #: Another series of checkpoints in the same run (see
    #: :class:`TriggeredCheckpointHook`) keeps its own list.
    kept_steps_key = 'keep_ckpt_ids'

    def _is_local(self) -> bool:
        return isinstance(self.file_backend, LocalBackend)

    def before_train(self, runner) -> None:
        """Resolve the output folder (without mmengine's notices about its
        unused FileClient); drop ``*.partial`` left by a kill."""
        with _without_unused_file_client_notices(runner.logger):
            super().before_train(runner)
        if not (self._is_local() and is_main_process()
                and osp.isdir(self.out_dir)):
            return
        for name in sorted(os.listdir(self.out_dir)):
            if name.endswith(PARTIAL_SUFFIX):
                runner.logger.warning(
                    f'Removing {name}: an unfinished checkpoint write from a '
                    'run that was killed while saving.')
                os.remove(osp.join(self.out_dir, name))

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        with _without_unused_file_client_notices(runner.logger):
            if self._is_local():
                self._save_atomically(runner, step, meta)
            else:
                super()._save_checkpoint_with_step(runner, step, meta)

    def _save_atomically(self, runner, step, meta) -> None:
        """Steps 1-3 of the class docstring."""
        expired = self._update_kept_steps(runner, step)
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        partial = self.last_ckpt + PARTIAL_SUFFIX
        try:
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename + PARTIAL_SUFFIX,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
            if not is_main_process():
                return
            fsync_path(partial)
            os.replace(partial, self.last_ckpt)
            fsync_path(self.out_dir)
        except OSError as err:
            written = osp.getsize(partial) if osp.isfile(partial) else 0
            _remove_if_present(partial)
            raise self._save_failed(err, written) from err
        record = osp.join(runner.work_dir, 'last_checkpoint')
        try:
            write_text_atomically(record, self.last_ckpt)
        except OSError as err:
            raise OSError(
                err.errno,
                f'{self.last_ckpt} is saved and complete, but {record} '
                f'could not be updated: {err}. Fix that, then rerun with '
                f'`--resume`: it continues from {ckpt_filename}, the newest '
                'complete checkpoint.') from err
        for path in expired:
            if osp.isfile(path):
                os.remove(path)

    def _save_failed(self, err: OSError, written: int) -> OSError:
        """The error to raise for a checkpoint write that failed: where,
        why, what is left, and (out of space) what room a save needs."""
        name = osp.basename(self.last_ckpt)
        kept = checkpoints_by_step(self.out_dir, self.filename_tmpl)
        names = ', '.join(osp.basename(kept[step]) for step in sorted(kept))
        intact = (f'Nothing was replaced: {names} and last_checkpoint are '
                  'as they were.' if kept else 'Nothing was replaced.')
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            return OSError(
                err.errno,
                f'Saving checkpoint {name} in {self.out_dir} failed: {err}. '
                f'{intact} Fix the cause, then rerun with `--resume`.')
        if kept:
            size = ('a checkpoint is '
                    f'{human_size(max(map(osp.getsize, kept.values())))}')
        else:
            size = f'{human_size(written)} written before the disk filled'
        if self.max_keep_ckpts > 0:
            room = (f'max_keep_ckpts + 1 = {self.max_keep_ckpts + 1} '
                    'checkpoints: the oldest is deleted only after the new '
                    'one is complete')
            lower = 'lower default_hooks.checkpoint.max_keep_ckpts'
        else:
            room = ('every checkpoint (max_keep_ckpts is not set, so none '
                    'is deleted)')
            lower = 'set default_hooks.checkpoint.max_keep_ckpts'
        free = human_size(shutil.disk_usage(self.out_dir).free)
        return OSError(
            err.errno,
            f'No space left saving checkpoint {name} in {self.out_dir} '
            f'({free} free; {size}). '
            f'An atomic save needs room for {room}. {intact} Fix: free '
            f'space in {self.out_dir}, {lower}, or train in another '
            '`--work-dir` (`--resume PATH` to a checkpoint here); then rerun '
            'with `--resume`.')

    def _update_kept_steps(self, runner, step: int) -> List[str]:
        """mmengine's ``max_keep_ckpts`` bookkeeping; returns the paths to
        delete once the new checkpoint is safely on disk."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids
                                        and self.keep_ckpt_ids[-1] == step):
            return []
        expired = []
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            old_step = self.keep_ckpt_ids.popleft()
            expired.append(
                self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(old_step)))
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info(self.kept_steps_key,
                                       list(self.keep_ckpt_ids))
        return expired
