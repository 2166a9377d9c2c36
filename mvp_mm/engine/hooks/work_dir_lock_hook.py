"""One run per work dir, for the stock OpenMMLab training tools."""
from typing import Optional

from mmengine.dist import broadcast_object_list, is_distributed
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

from ..work_dir_lock import WorkDirLock, WorkDirLockedError, lock_work_dir


@HOOKS.register_module()
class WorkDirLockHook(Hook):
    """Take the work dir's lock (:func:`mvp_mm.engine.lock_work_dir`) when
    training starts; all ranks stop if another run holds it.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. ``tools/train.py``
    and ``tools/demo.py`` lock the work dir before the Runner is built
    (this hook then only adds a reference to that lock); this hook covers
    mmpretrain's and mmseg's own ``tools/train.py`` run on these configs.
    There it acts in ``before_train``, the first hook call that only
    training makes (``tools/test.py`` runs ``before_run`` too, and takes no
    lock): the checkpoints, ``last_checkpoint`` and the ``*.partial`` clean-up
    are safe, but the Runner has already written its config dump and a
    timestamped log folder. Rank 0 locks; the outcome is broadcast, so every
    rank raises the same error. Released after the run. The wait of a
    restarted job is the config's ``work_dir_lock_wait`` (see
    :func:`mvp_mm.engine.lock_work_dir`).
    """

    priority = 'HIGHEST'  # before CheckpointHook deletes *.partial

    def __init__(self) -> None:
        self._lock: Optional[WorkDirLock] = None

    def before_train(self, runner) -> None:
        error = None
        try:
            self._lock = lock_work_dir(runner.work_dir, runner.rank,
                                       runner.cfg.get('work_dir_lock_wait'))
        except WorkDirLockedError as locked:
            error = str(locked)
        if is_distributed():
            box = [error]
            broadcast_object_list(box)
            error = box[0]
        if error is not None:
            raise WorkDirLockedError(error)

    def after_run(self, runner) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
