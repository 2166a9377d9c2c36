"""AtomicCheckpointHook: a save cut short never becomes what --resume picks,
and the previous checkpoint survives it (even with max_keep_ckpts=1)."""
import os
import os.path as osp

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger

from mvp_mm.engine import AtomicCheckpointHook, find_resume_checkpoint


class _Killed(BaseException):
    """The process dies (like SIGKILL, nothing after it runs)."""


class _Runner:
    """The parts of mmengine's Runner that CheckpointHook uses."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.message_hub = MessageHub.get_instance(f'atomic{id(self)}')
        self.logger = MMLogger.get_current_instance()
        self.die_after_bytes = None

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        path = osp.join(out_dir, filename)
        torch.save({'state_dict': {'w': torch.randn(4096)}}, path)
        if self.die_after_bytes is not None:  # the write is cut short
            with open(path, 'rb') as f:
                data = f.read()
            with open(path, 'wb') as f:
                f.write(data[:self.die_after_bytes])
            raise _Killed


def _hook(runner) -> AtomicCheckpointHook:
    hook = AtomicCheckpointHook(interval=2, by_epoch=False, max_keep_ckpts=1)
    hook.before_train(runner)
    return hook


def test_killed_save_leaves_the_last_complete_checkpoint(tmp_path):
    work = str(tmp_path)
    runner = _Runner(work)
    hook = _hook(runner)
    hook._save_checkpoint_with_step(runner, 2, dict(iter=2))
    first = osp.join(work, 'iter_2.pth')
    assert find_resume_checkpoint(work) == first
    assert torch.load(first)['state_dict']['w'].shape == (4096, )

    runner.die_after_bytes = 1000
    with pytest.raises(_Killed):
        hook._save_checkpoint_with_step(runner, 4, dict(iter=4))
    # the cut-short file is only ever a .partial; nothing else changed
    assert sorted(os.listdir(work)) == [
        'iter_2.pth', 'iter_4.pth.partial', 'last_checkpoint'
    ]
    assert find_resume_checkpoint(work) == first
    assert torch.load(first)['state_dict']['w'].shape == (4096, )

    # the rerun: the leftover .partial is removed, later saves proceed and
    # max_keep_ckpts=1 deletes the old checkpoint only after the new one
    runner = _Runner(work)
    runner.message_hub.update_info('keep_ckpt_ids', [2])  # from the resume
    hook = _hook(runner)
    assert not osp.exists(osp.join(work, 'iter_4.pth.partial'))
    hook._save_checkpoint_with_step(runner, 4, dict(iter=4))
    assert sorted(os.listdir(work)) == ['iter_4.pth', 'last_checkpoint']
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')
    assert runner.message_hub.get_info('keep_ckpt_ids') == [4]
