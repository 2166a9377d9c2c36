"""TimedCheckpointHook: a checkpoint after the first iteration that ends
interval_minutes after the last checkpoint of any kind, inside epochs, in a
series of its own (file names, max_keep_ckpts); --resume finds it."""
import os
import os.path as osp
import types

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from reliability_tiny import reliable_tiny_cfg

import mvp_mm.engine.hooks.timed_checkpoint_hook as timed_module
from mvp_mm.engine import TimedCheckpointHook, resolve_resume
from mvp_mm.utils import make_imagenet_folder


class _Clock(Hook):
    """A wall clock for the timed hook that advances ``minutes`` during
    each iteration (this hook runs before it)."""

    priority = 'HIGH'

    def __init__(self, minutes: float) -> None:
        self.minutes, self.now = minutes, 0.0

    def monotonic(self) -> float:
        return self.now

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.now += 60 * self.minutes


def test_timed_checkpoints_inside_epochs(tmp_path, monkeypatch):
    """10 minutes an iteration, a save due every 25 minutes, 4 iterations an
    epoch: timed saves after iterations 3 and 7 (the epoch checkpoint at 4
    restarts the clock), the last one kept; the epoch series is untouched."""
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 4, 4, 80)  # 16 images, batch 4
    work = str(tmp_path / 'work')
    cfg = reliable_tiny_cfg(data, work)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
    cfg.default_hooks.checkpoint.update(by_epoch=True, interval=1,
                                        max_keep_ckpts=3)
    timed = [h for h in cfg.custom_hooks if h.type == 'TimedCheckpointHook']
    assert timed == [dict(type='TimedCheckpointHook', interval_minutes=30,
                          max_keep_ckpts=2)]  # the paper configs' default
    timed[0].update(interval_minutes=25, max_keep_ckpts=1)
    clock = _Clock(minutes=10)
    monkeypatch.setattr(timed_module, 'time',
                        types.SimpleNamespace(monotonic=clock.monotonic))
    runner = Runner.from_cfg(cfg)
    runner.register_hook(clock)
    runner.train()

    assert sorted(n for n in os.listdir(work) if '.pth' in n) == [
        'epoch_1.pth', 'epoch_2.pth', 'timed_iter_7.pth']
    timed_7 = torch.load(osp.join(work, 'timed_iter_7.pth'),
                         weights_only=False)
    assert timed_7['meta']['iter'] == 7 and timed_7['meta']['epoch'] == 1
    assert timed_7['message_hub']['runtime_info']['keep_timed_ckpt_ids'] \
        == [7]
    info = torch.load(osp.join(work, 'epoch_2.pth'),
                      weights_only=False)['message_hub']['runtime_info']
    assert info['keep_ckpt_ids'] == [1, 2]
    assert info['keep_timed_ckpt_ids'] == [7]

    # A run killed after timed_iter_7 was renamed into place, before it was
    # recorded (epoch_2 not written yet): --resume continues from it, and
    # without last_checkpoint too.
    os.remove(osp.join(work, 'epoch_2.pth'))
    os.utime(osp.join(work, 'epoch_1.pth'), (1e9, 1e9))
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_1.pth'))
    for record in (True, False):
        if not record:
            os.remove(osp.join(work, 'last_checkpoint'))
        cfg.resume, cfg.load_from = True, None
        resolve_resume(cfg)
        assert cfg.load_from == osp.join(work, 'timed_iter_7.pth')


def test_bad_interval_is_a_clear_error():
    with pytest.raises(ValueError, match='interval_minutes must be > 0'):
        TimedCheckpointHook(interval_minutes=0)
    with pytest.raises(ValueError, match='one "{}" for the iteration'):
        TimedCheckpointHook(filename_tmpl='timed.pth')
