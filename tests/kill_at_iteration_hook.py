"""Test-only hook: SIGKILL the training process after a given iteration,
i.e. a job killed by the cluster mid-epoch (no cleanup, no atexit)."""
import os
import signal

from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class KillAtIterationHook(Hook):
    """Kill the process right after iteration ``iteration`` (1-based) is
    logged, before a checkpoint of that iteration is saved."""

    priority = 'LOW'  # after LoggerHook (BELOW_NORMAL), before CheckpointHook

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
