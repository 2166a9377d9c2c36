"""Test-only hooks for the reliability tests (imported by subprocess runs
through custom_imports, with tests/ on PYTHONPATH)."""
import json
import os
import os.path as osp
import signal
import time

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


@HOOKS.register_module()
class PauseAfterTrainHook(Hook):
    """After the last iteration (and its checkpoint), create ``paused`` and
    wait until ``resume`` exists (at most ``timeout`` s): a run that holds
    its work dir while a test acts on it."""

    priority = 'LOWEST'

    def __init__(self, paused: str, resume: str, timeout: float = 120):
        self.paused, self.resume, self.timeout = paused, resume, timeout

    def after_train(self, runner) -> None:
        open(self.paused, 'w').close()
        deadline = time.monotonic() + self.timeout
        while not osp.exists(self.resume) and time.monotonic() < deadline:
            time.sleep(0.05)
