"""Test-only hooks for the reliability tests (imported by subprocess runs
through custom_imports, with tests/ on PYTHONPATH)."""
import json
import os
import os.path as osp
import signal

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class KillAtIterationHook(Hook):
    """SIGKILL the process right after iteration ``iteration`` (1-based) is
    logged and before it is checkpointed: a job killed by the cluster, with
    no cleanup and no atexit."""

    priority = 'LOW'  # after LoggerHook (BELOW_NORMAL), before CheckpointHook

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class RecordFirstLossHook(Hook):
    """Write this rank's first-iteration loss to
    ``work_dir/first_loss_rank{rank}.json`` (mmengine logs rank 0's only)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter == 0:
            path = osp.join(runner.work_dir,
                            f'first_loss_rank{get_rank()}.json')
            with open(path, 'w') as f:
                json.dump(dict(loss=outputs['loss'].item()), f)
