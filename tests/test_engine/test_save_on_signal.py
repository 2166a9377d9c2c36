"""SaveOnSignalHook: SIGUSR1 / SIGTERM finish the iteration, save it
atomically (checked by the NaN guard) and stop with exit code 75; a second
signal during the save changes nothing; a signal before the first
iteration stops without a checkpoint. Distributed agreement, the exit code
of a real process and Slurm's requeue: tests/tools/test_sbatch_train.py."""
import glob
import os
import os.path as osp
import signal

import pytest
import torch
from mmengine.runner import Runner
from reliability_tiny import logged_losses, reliable_tiny_cfg

import cluster_test_hooks  # noqa: F401  (registers the test hooks)
from mvp_mm.engine import (STOPPED_BY_SIGNAL_EXIT_CODE, StoppedBySignal,
                           resolve_resume)
from mvp_mm.engine.resume import is_complete_checkpoint
from mvp_mm.utils import make_imagenet_folder

MAX_ITERS = 4  # one epoch of 16 images


class _Unhandled(Exception):
    """A stop signal reached the test's own handler: nothing in the run
    handled it (without SaveOnSignalHook, it would have killed the run)."""


@pytest.fixture
def stop_signals():
    """SIGTERM / SIGUSR1 raise _Unhandled unless the run handles them;
    the test process's own handlers come back afterwards."""

    def unhandled(signum, frame):
        raise _Unhandled(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, unhandled)
                for sig in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _cfg(tmp_path, name, *send_signals):
    data = str(tmp_path / 'in')
    if not osp.isdir(data):
        make_imagenet_folder(data, 4, 4, 80)
    cfg = reliable_tiny_cfg(data, str(tmp_path / name), MAX_ITERS,
                            checkpoint_interval=MAX_ITERS)
    cfg.custom_hooks += [dict(type='SendSignalHook', **kw)
                         for kw in send_signals]
    return cfg


def _log(work_dir: str) -> str:
    return ''.join(open(p).read() for p in sorted(
        glob.glob(osp.join(work_dir, '*', '*.log'))))


def test_signal_saves_the_iteration_and_resumes_it(tmp_path, stop_signals):
    """SIGUSR1 after iteration 2, SIGTERM during its save: one complete
    signal_iter_2.pth, exit code 75; --resume continues at iteration 3 with
    the losses of the uninterrupted run."""
    Runner.from_cfg(_cfg(tmp_path, 'whole')).train()
    uninterrupted = {r['iter']: r['loss']
                     for r in logged_losses(str(tmp_path / 'whole'))}

    work = str(tmp_path / 'work')
    cfg = _cfg(tmp_path, 'work', dict(signal_name='SIGUSR1', iteration=2),
               dict(signal_name='SIGTERM', at='save'))
    with pytest.raises(StoppedBySignal) as stop:
        Runner.from_cfg(cfg).train()
    assert stop.value.code == STOPPED_BY_SIGNAL_EXIT_CODE == 75
    saved = osp.join(work, 'signal_iter_2.pth')
    assert sorted(n for n in os.listdir(work) if '.pth' in n) == [
        'signal_iter_2.pth']
    assert is_complete_checkpoint(saved)
    checkpoint = torch.load(saved, weights_only=False)
    assert checkpoint['meta']['iter'] == 2
    assert 'optimizer' in checkpoint and 'param_schedulers' in checkpoint
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == saved
    assert [r['iter'] for r in logged_losses(work)] == [1, 2]
    log = _log(work)
    assert 'weights after iteration 2 checked before saving' in log
    assert 'training stopped after iteration 2: saved' in log
    assert 'SIGUSR1 was received' in log and '(2 signals in all)' in log

    resumed = _cfg(tmp_path, 'work')
    resumed.resume = True
    resolve_resume(resumed)
    assert resumed.load_from == saved
    Runner.from_cfg(resumed).train()
    rows = logged_losses(work)
    assert [r['iter'] for r in rows] == list(range(1, MAX_ITERS + 1))
    for row in rows:
        assert row['loss'] == pytest.approx(uninterrupted[row['iter']],
                                            abs=1e-6)


def test_signal_before_the_first_iteration_saves_nothing(tmp_path,
                                                         stop_signals):
    work = str(tmp_path / 'work')
    with pytest.raises(StoppedBySignal) as stop:
        Runner.from_cfg(_cfg(tmp_path, 'work', dict(
            signal_name='SIGTERM', at='start'))).train()
    assert stop.value.code == 75
    assert not glob.glob(osp.join(work, '*.pth*'))
    assert logged_losses(work) == []
    assert 'before the first iteration: nothing new to save' in _log(work)


def test_signal_save_is_refused_with_nan_weights(tmp_path, stop_signals):
    """The finite-weights guard checks the signal's save like every save."""
    work = str(tmp_path / 'work')
    with pytest.raises(RuntimeError, match='Refusing to save the checkpoint '
                       'after iteration 2: NaN/Inf'):
        Runner.from_cfg(_cfg(tmp_path, 'work', dict(
            signal_name='SIGUSR1', iteration=2, nan_weights=True))).train()
    assert not glob.glob(osp.join(work, '*.pth*'))


def test_signal_waits_for_the_accumulation_window(tmp_path, stop_signals):
    """accumulative_counts=2, SIGTERM after iteration 1: the window ends
    (iteration 2, the optimizer step), then the save: nothing accumulated
    is lost."""
    work = str(tmp_path / 'work')
    cfg = _cfg(tmp_path, 'work', dict(signal_name='SIGTERM', iteration=1))
    cfg.optim_wrapper.accumulative_counts = 2
    with pytest.raises(StoppedBySignal):
        Runner.from_cfg(cfg).train()
    assert sorted(n for n in os.listdir(work) if '.pth' in n) == [
        'signal_iter_2.pth']
