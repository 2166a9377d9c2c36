"""Test-only hooks for the cluster tests (signals, time-based checkpoints,
lost workers); subprocess runs import them through custom_imports, with
tests/ on PYTHONPATH."""
import os
import signal
import time
from typing import Optional

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class SendSignalHook(Hook):
    """Send ``signal_name`` during training, as a cluster would.

    ``at='iteration'``: right after iteration ``iteration`` (1-based) has
    run, before the logger and checkpoint hooks (this hook's priority);
    ``'save'``: while a checkpoint is being saved (``before_save_checkpoint``
    of the saving rank); ``'start'``: after training has started, before
    its first iteration (``before_train_epoch``). Sent to this process, or
    to the pid written in ``pid_file`` (e.g. a Slurm batch shell), on
    ``rank`` only if given, and only in the first attempt (not once torchrun
    restarted the workers: ``TORCHELASTIC_RESTART_COUNT`` > 0).
    """

    priority = 'HIGH'

    def __init__(self, signal_name: str, at: str = 'iteration',
                 iteration: int = 1, rank: Optional[int] = None,
                 pid_file: Optional[str] = None,
                 nan_weights: bool = False) -> None:
        self.signum = signal.Signals[signal_name]
        self.at, self.iteration, self.rank = at, iteration, rank
        self.pid_file = pid_file
        self.nan_weights = nan_weights
        self.sent = False

    def _send(self, runner=None) -> None:
        if self.sent or (self.rank is not None and get_rank() != self.rank) \
                or os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') != '0':
            return
        self.sent = True
        if self.nan_weights:  # an lr spike just before the stop
            model = getattr(runner.model, 'module', runner.model)
            with torch.no_grad():
                next(model.backbone.parameters()).fill_(float('nan'))
        pid = os.getpid()
        if self.pid_file is not None:
            with open(self.pid_file) as f:
                pid = int(f.read())
        os.kill(pid, self.signum)

    def before_train_epoch(self, runner) -> None:
        if self.at == 'start':
            self._send(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self.at == 'iteration' and runner.iter + 1 == self.iteration:
            self._send(runner)

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if self.at == 'save':
            self._send(runner)


@HOOKS.register_module()
class SlowIterationHook(Hook):
    """Sleep ``seconds`` after every iteration: a run long enough for
    signals sent from outside to arrive while it trains."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        time.sleep(self.seconds)
