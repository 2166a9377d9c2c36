"""SIGTERM / SIGUSR1: finish the iteration, save it, exit with a known code."""
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, Optional, Sequence

from mmengine.dist import barrier, is_distributed, is_main_process

from mmpretrain.registry import HOOKS

from .triggered_checkpoint_hook import (TriggeredCheckpointHook,
                                        ends_optimizer_step, max_over_ranks)

#: The exit code of a run stopped by a signal, after the checkpoint of its
#: last iteration is complete (or before its first iteration, with nothing
#: new to save): sysexits.h's EX_TEMPFAIL, "try again later". Rerun with
#: ``--resume`` to continue.
STOPPED_BY_SIGNAL_EXIT_CODE = 75


class StoppedBySignal(SystemExit):
    """Raised by :class:`SaveOnSignalHook` to end the process: a
    ``SystemExit``, so it passes every ``except Exception`` and the process
    exits with ``code``, no traceback."""


@HOOKS.register_module()
class SaveOnSignalHook(TriggeredCheckpointHook):
    """On a stop signal, save the current iteration and exit cleanly.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. What clusters send
    before they take a job away (Slurm: SIGTERM at the time limit, on
    pre-emption and on ``scancel``, ``KillWait`` seconds before SIGKILL; the
    signal ``sbatch --signal`` asks for, e.g. SIGUSR1, a chosen time
    earlier) otherwise kills the run and its unsaved work. From the start
    of training (``before_train``, after any checkpoint is loaded) to its
    end, a signal of ``signals`` only sets a flag, and:

    1. the iteration in progress finishes (forward, backward, optimizer and
       lr steps, logging); with gradient accumulation, the rest of its
       window too (what a window accumulated is in no checkpoint);
    2. the ranks agree: after every optimizer step, one all-reduce of one
       number (the signal, or 0) tells every rank whether any rank got one,
       so all stop after the same iteration, also when the signal reached
       some ranks (nodes) later or not at all;
    3. the weights are checked (:class:`NonFiniteGuardHook`) and the
       checkpoint of that iteration is written atomically
       (``signal_iter_N.pth``, a series of its own:
       :class:`TriggeredCheckpointHook`);
    4. under Slurm (``SLURM_JOB_ID`` set) and for a signal of
       ``requeue_signals``, rank 0 runs ``scontrol requeue $SLURM_JOB_ID``
       once, after the save: the requeued job starts again with
       ``SLURM_RESTART_COUNT`` set, and ``tools/train.py`` then resumes on
       its own (idea: PyTorch Lightning's SLURM signal handler,
       https://github.com/Lightning-AI/pytorch-lightning/blob/2.4.0/src/lightning/pytorch/trainer/connectors/signal_connector.py);
    5. the ranks meet at a barrier, the signals are ignored from then on
       (a late duplicate cannot kill the exit) and the process exits with
       ``exit_code`` (:class:`StoppedBySignal`).

    A second signal, e.g. during the save, is only counted: nothing is cut
    short. A signal before the first iteration of this run exits the same
    way at that iteration's start, without a checkpoint (nothing new to
    save). Training that ends normally restores the previous handlers; a
    run that raised leaves ours stale, and a stale handler hands the signal
    to the previous one. Python delivers signals only to the main thread,
    so training must run there.

    Args:
        signals (Sequence[str]): Names of the signals that stop the run.
            Defaults to ``('SIGTERM', 'SIGUSR1')``.
        exit_code (int): The process's exit status after such a stop.
            Defaults to :data:`STOPPED_BY_SIGNAL_EXIT_CODE` (75).
        requeue_signals (Sequence[str]): Under Slurm, a stop by one of these
            also requeues the job. Defaults to ``('SIGUSR1',)``: what
            ``tools/sbatch_train.sh`` asks Slurm to send before the time
            limit (SIGTERM also comes from ``scancel``, which must not
            resubmit; on pre-emption Slurm requeues a ``--requeue`` job
            itself). ``()`` never requeues.
        filename_tmpl (str): Defaults to ``'signal_iter_{}.pth'``.
        max_keep_ckpts (int): Defaults to 1.
        **kwargs: The other arguments of :class:`TriggeredCheckpointHook`.
    """

    priority = 'LOWEST'  # after every other hook's after_train_iter
    kept_steps_key = 'keep_signal_ckpt_ids'
    default_filename_tmpl = 'signal_iter_{}.pth'

    def __init__(self,
                 signals: Sequence[str] = ('SIGTERM', 'SIGUSR1'),
                 exit_code: int = STOPPED_BY_SIGNAL_EXIT_CODE,
                 requeue_signals: Sequence[str] = ('SIGUSR1', ),
                 filename_tmpl: str = default_filename_tmpl,
                 max_keep_ckpts: int = 1,
                 **kwargs) -> None:
        super().__init__(filename_tmpl, max_keep_ckpts, **kwargs)
        self.signals = [self._signal(name, 'signals') for name in signals]
        self.requeue_signals = [
            self._signal(name, 'requeue_signals') for name in requeue_signals
        ]
        if not 0 < exit_code < 256:
            raise ValueError(
                f'SaveOnSignalHook: exit_code must be in 1..255, got '
                f'{exit_code}.')
        self.exit_code = exit_code
        self._previous: Dict[int, object] = {}
        self._train_frame = None
        self._received: Optional[int] = None
        self._received_at: Optional[float] = None
        self._count = 0
        self._before_first_iter = False

    @staticmethod
    def _signal(name: str, arg: str) -> signal.Signals:
        try:
            return signal.Signals[name]
        except KeyError:
            raise ValueError(
                f'SaveOnSignalHook: {arg} holds {name!r}, which is not a '
                'signal name of this system (e.g. SIGTERM, SIGUSR1).'
            ) from None

    # ------------------------------------------------------------ handlers
    def before_train(self, runner) -> None:
        """Install the handlers."""
        super().before_train(runner)
        if self._previous:  # a second train() on the same runner
            self._restore()
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                'SaveOnSignalHook: training runs outside the main thread, '
                'where Python delivers no signals. Train in the main thread, '
                'or remove SaveOnSignalHook from custom_hooks.')
        self._train_frame = self._find_train_frame(runner)
        self._received, self._received_at, self._count = None, None, 0
        self._before_first_iter = True
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        names = ', '.join(sig.name for sig in self.signals)
        runner.logger.info(
            f'SaveOnSignalHook: {names} will stop training after the '
            f'current iteration, with a checkpoint and exit code '
            f'{self.exit_code}.')

    def after_train(self, runner) -> None:
        """Training is over: the previous handlers again."""
        self._restore()

    @staticmethod
    def _find_train_frame(runner):
        """The frame of ``runner.train()`` on the stack, or None (a hook
        driven by hand): a signal arriving while it is not on the stack
        finds a stale handler."""
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name == 'train' and \
                    frame.f_locals.get('self') is runner:
                return frame
            frame = frame.f_back
        return None

    def _training(self, frame) -> bool:
        if self._train_frame is None:
            return True
        while frame is not None:
            if frame is self._train_frame:
                return True
            frame = frame.f_back
        return False

    def _on_signal(self, signum: int, frame) -> None:
        if not self._training(frame):  # training raised: hand it on
            self._restore()
            signal.raise_signal(signum)
            return
        self._count += 1
        if self._received is None:
            self._received, self._received_at = signum, time.monotonic()

    def _restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        self._train_frame = None

    # ------------------------------------------------------------ stopping
    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        """A signal before the first iteration: stop, nothing to save."""
        if not self._before_first_iter:
            return
        self._before_first_iter = False
        signum = self._agreed_signal(runner)
        if signum:
            self._stop(runner, signum, None)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Save this iteration and stop if any rank got a signal."""
        if not ends_optimizer_step(runner):
            return
        signum = self._agreed_signal(runner)
        if signum:
            started = time.monotonic()
            path = self.save_now(
                runner, f'{signal.Signals(signum).name} received')
            self._stop(runner, signum, path, time.monotonic() - started)

    def _agreed_signal(self, runner) -> int:
        return int(max_over_ranks(runner, float(self._received or 0)))

    def _stop(self, runner, signum: int, saved: Optional[str],
              save_s: float = 0.0) -> None:
        name = signal.Signals(signum).name
        for sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)
        requeue = signum in self.requeue_signals and \
            'SLURM_JOB_ID' in os.environ
        requeued = self._requeue(runner) if requeue and \
            is_main_process() else ''
        if is_distributed():
            barrier()
        if self._received is None:
            when = f'{name} was received on another rank'
        else:
            when = (f'{signal.Signals(self._received).name} was received '
                    f'{time.monotonic() - self._received_at:.2f} s ago')
            if self._count > 1:
                when += f' ({self._count} signals in all)'
        if saved is None:
            what = ('before the first iteration: nothing new to save. '
                    'Rerun with `--resume` to continue.')
        else:
            what = (f'after iteration {runner.iter + 1}: saved {saved} in '
                    f'{save_s:.2f} s. Rerun with `--resume` to continue.')
        runner.logger.warning(
            f'SaveOnSignalHook: training stopped {what} {requeued}'
            f'({when}; exit code {self.exit_code}.)')
        raise StoppedBySignal(self.exit_code)

    @staticmethod
    def _requeue(runner) -> str:
        """``scontrol requeue $SLURM_JOB_ID``; the log's sentence on it."""
        job = os.environ['SLURM_JOB_ID']
        command = ['scontrol', 'requeue', job]
        try:
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            failure = str(err)
        else:
            if result.returncode == 0:
                return (f'Slurm job {job} requeued (`{" ".join(command)}`): '
                        'it resumes on its own when it starts again. ')
            failure = (f'exit code {result.returncode}: '
                       f'{(result.stderr or result.stdout).strip()}')
        runner.logger.error(
            f'SaveOnSignalHook: `{" ".join(command)}` failed ({failure}): '
            'the job is not requeued. Submit it again (it resumes from the '
            'checkpoint just saved); tools/sbatch_train.sh submits with '
            '--requeue, without which Slurm may refuse.')
        return ''
