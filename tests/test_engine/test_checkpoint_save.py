"""AtomicCheckpointHook: a save cut short never becomes what --resume picks,
the previous checkpoint survives it (even with max_keep_ckpts=1), a kill
between the rename and last_checkpoint still resumes the new checkpoint,
and a full disk is a clear error that leaves everything as it was."""
import errno
import logging
import os
import os.path as osp
import re
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger

import mvp_mm.engine.hooks.atomic_checkpoint_hook as hook_module
from mvp_mm.engine import (AtomicCheckpointHook, find_resume_checkpoint,
                           resolve_resume)
from mvp_mm.engine.hooks.atomic_checkpoint_hook import (human_size,
                                                        write_text_atomically)
from tiny import REPO


class _Killed(BaseException):
    """The process dies (like SIGKILL, nothing after it runs)."""


class _Runner:
    """The parts of mmengine's Runner that CheckpointHook uses."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        # A fresh hub: MessageHub instances live as long as the process,
        # and a name from id() comes back once an earlier runner is freed,
        # handing this one that run's kept-checkpoint record, which
        # CheckpointHook.before_train acts on (deleting checkpoints).
        self.message_hub = MessageHub.get_instance(
            f'atomic_{uuid.uuid4().hex}')
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


def _hook(runner, **kwargs) -> AtomicCheckpointHook:
    """The hook as training starts: every 2 iterations, max_keep_ckpts=1,
    unless ``kwargs`` say otherwise."""
    hook = AtomicCheckpointHook(
        **dict(dict(interval=2, by_epoch=False, max_keep_ckpts=1), **kwargs))
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


def _kill_before_recording(monkeypatch):
    """Die right after the rename, before last_checkpoint is written."""
    def killed(path, text):
        raise _Killed

    monkeypatch.setattr(hook_module, 'write_text_atomically', killed)


def test_killed_between_rename_and_record_resumes_the_new_checkpoint(
        tmp_path, monkeypatch):
    work = str(tmp_path)
    runner = _Runner(work)
    hook = _hook(runner, interval=1, by_epoch=True)
    with monkeypatch.context() as m:  # the very first save
        _kill_before_recording(m)
        with pytest.raises(_Killed):
            hook._save_checkpoint_with_step(runner, 1, dict(epoch=1))
    assert sorted(os.listdir(work)) == ['epoch_1.pth']  # no last_checkpoint
    first = osp.join(work, 'epoch_1.pth')
    assert find_resume_checkpoint(work) == first
    cfg = Config(dict(resume=True, load_from=None, work_dir=work,
                      default_hooks=dict(checkpoint=dict(by_epoch=True))))
    resolve_resume(cfg)  # what `tools/train.py --resume` does
    assert cfg.resume is True and cfg.load_from == first

    # a later save: last_checkpoint is left one save behind
    hook._save_checkpoint_with_step(runner, 1, dict(epoch=1))
    with monkeypatch.context() as m:
        _kill_before_recording(m)
        with pytest.raises(_Killed):
            hook._save_checkpoint_with_step(runner, 2, dict(epoch=2))
    assert sorted(os.listdir(work)) == [
        'epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'
    ]
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == first
    assert find_resume_checkpoint(work) == osp.join(work, 'epoch_2.pth')


def test_a_stale_later_step_does_not_win_over_last_checkpoint(tmp_path):
    """epoch_3.pth of an earlier, longer run (older than the checkpoint
    last_checkpoint names) is not what this run continues from."""
    work = str(tmp_path)
    runner = _Runner(work)
    hook = _hook(runner, interval=1, by_epoch=True, max_keep_ckpts=-1)
    for epoch in (1, 2, 3):
        hook._save_checkpoint_with_step(runner, epoch, dict(epoch=epoch))
    # rerun from epoch 1, saved epoch 2 again, then killed in epoch 3
    hook._save_checkpoint_with_step(runner, 2, dict(epoch=2))
    stale = osp.join(work, 'epoch_3.pth')
    os.utime(stale, (1e9, 1e9))
    assert find_resume_checkpoint(work) == osp.join(work, 'epoch_2.pth')
    os.utime(stale)  # written after epoch_2.pth: a later save
    assert find_resume_checkpoint(work) == stale


class _DiskFullRunner(_Runner):
    """A runner whose checkpoint write fills the disk after 1000 bytes."""

    def __init__(self, work_dir: str, error: int = errno.ENOSPC):
        super().__init__(work_dir)
        self.error = error
        self.warnings = []  # the hook's warnings
        self.logger = logging.getLogger(f'disk_full_{id(self)}')
        self.logger.propagate = False
        handler = logging.Handler(logging.WARNING)
        handler.emit = lambda record: self.warnings.append(
            record.getMessage())
        self.logger.addHandler(handler)

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        with open(osp.join(out_dir, filename), 'wb') as f:
            f.write(b'PK' + bytes(998))
        raise OSError(self.error, os.strerror(self.error))


@pytest.mark.parametrize('error', [errno.ENOSPC, errno.EDQUOT])
def test_full_disk_keeps_checkpoints_and_says_what_room_a_save_needs(
        tmp_path, error):
    work = str(tmp_path)
    runner = _Runner(work)
    hook = _hook(runner, max_keep_ckpts=2)
    for step in (2, 4):
        hook._save_checkpoint_with_step(runner, step, dict(iter=step))
    before = {name: os.path.getmtime(osp.join(work, name))
              for name in os.listdir(work)}
    size = osp.getsize(osp.join(work, 'iter_4.pth'))

    full = _DiskFullRunner(work, error)
    full.message_hub = runner.message_hub
    with pytest.raises(OSError) as info:
        hook._save_checkpoint_with_step(full, 6, dict(iter=6))
    message = str(info.value)
    assert info.value.errno == error
    assert f'No space left saving checkpoint iter_6.pth in {work}' in message
    assert re.search(r'\(\d+\.\d [KMGT]iB free;', message)  # disk_usage
    assert f'a checkpoint is {human_size(size)})' in message
    assert 'room for max_keep_ckpts + 1 = 3 checkpoints' in message
    assert 'iter_2.pth, iter_4.pth and last_checkpoint are as they were' \
        in message
    assert 'lower default_hooks.checkpoint.max_keep_ckpts' in message
    assert '--work-dir' in message and '--resume' in message
    # nothing half-written left, nothing deleted or replaced
    assert {name: os.path.getmtime(osp.join(work, name))
            for name in os.listdir(work)} == before
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')

    # the next start has nothing to clean up and blames no kill
    rerun = _DiskFullRunner(work)
    _hook(rerun)
    assert rerun.warnings == []


def test_other_write_errors_name_the_cause_and_keep_checkpoints(tmp_path):
    work = str(tmp_path)
    runner = _Runner(work)
    hook = _hook(runner, max_keep_ckpts=-1)
    hook._save_checkpoint_with_step(runner, 2, dict(iter=2))
    with pytest.raises(OSError, match=r'Saving checkpoint iter_4.pth in .* '
                       r'failed: \[Errno 5\] Input/output error\. Nothing '
                       r'was replaced: iter_2.pth and last_checkpoint'):
        hook._save_checkpoint_with_step(
            _DiskFullRunner(work, errno.EIO), 4, dict(iter=4))
    assert sorted(os.listdir(work)) == ['iter_2.pth', 'last_checkpoint']


def test_last_checkpoint_write_that_fails_leaves_the_old_record(
        tmp_path, monkeypatch):
    record = str(tmp_path / 'last_checkpoint')
    write_text_atomically(record, 'iter_2.pth')

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', disk_full)
    with pytest.raises(OSError):
        write_text_atomically(record, 'iter_4.pth')
    assert os.listdir(tmp_path) == ['last_checkpoint']
    with open(record) as f:
        assert f.read() == 'iter_2.pth'


def test_human_size():
    assert human_size(512) == '512 bytes'
    assert human_size(33 * 2**10) == '33.0 KiB'
    assert human_size(int(1.5 * 2**30)) == '1.5 GiB'


def test_full_disk_at_the_first_save_gives_what_was_written(tmp_path):
    hook = _hook(_Runner(str(tmp_path)))
    with pytest.raises(OSError, match=r'1000 bytes written before the disk '
                       r'filled\)\. An atomic save needs room for '
                       r'max_keep_ckpts \+ 1 = 2 checkpoints.*Nothing was '
                       r'replaced\.'):
        hook._save_checkpoint_with_step(
            _DiskFullRunner(str(tmp_path)), 2, dict(iter=2))
    assert os.listdir(tmp_path) == []


def test_empty_last_checkpoint_falls_back_to_the_newest_complete(tmp_path):
    """An empty last_checkpoint (mmengine's own hook rewrites it in place)
    resumes the newest complete checkpoint, or names the fix if none."""
    work = str(tmp_path)
    open(osp.join(work, 'last_checkpoint'), 'w').close()
    with pytest.raises(ValueError, match='is empty.*--resume PATH'):
        find_resume_checkpoint(work)
    hook = _hook(_Runner(work), max_keep_ckpts=-1)
    for step in (2, 4, 10):
        hook._save_checkpoint_with_step(_Runner(work), step, dict(iter=step))
    with open(osp.join(work, 'iter_12.pth'), 'wb') as f:
        f.write(b'PK\x03\x04 cut short')  # mmengine's hook, killed mid-save
    open(osp.join(work, 'last_checkpoint'), 'w').close()
    # 10 > 4 > 2 by step, though iter_10.pth sorts before iter_2.pth
    assert find_resume_checkpoint(work) == osp.join(work, 'iter_10.pth')


def test_mmengine_unused_file_client_notices_are_dropped(tmp_path,
                                                         logged_warnings):
    """mmengine's CheckpointHook.before_train builds a FileClient it never
    uses and logs two deprecation notices on every run; ours drops exactly
    those, while its own warnings (a leftover .partial) still show."""
    with open(tmp_path / 'iter_2.pth.partial', 'wb') as f:
        f.write(b'cut short')
    from mmengine.hooks import CheckpointHook
    stock = CheckpointHook(interval=2, by_epoch=False)
    stock.before_train(_Runner(str(tmp_path)))
    stock_messages = [r.getMessage() for r in logged_warnings]
    assert any(m.startswith(hook_module.UNUSED_FILE_CLIENT_NOTICES)
               for m in stock_messages)  # what mmengine logs
    logged_warnings.clear()
    _hook(_Runner(str(tmp_path)))
    messages = [r.getMessage() for r in logged_warnings]
    assert not any(m.startswith(hook_module.UNUSED_FILE_CLIENT_NOTICES)
                   for m in messages), messages
    assert any('iter_2.pth.partial' in m for m in messages)
    assert not MMLogger.get_current_instance().filters  # filter removed


def test_every_config_saves_atomically():
    """Pre-training and downstream configs alike (the mmseg-scope ones by
    mmpretrain's registry)."""
    configs = sorted(
        osp.join(folder, name)
        for folder, _, names in os.walk(osp.join(REPO, 'configs'))
        for name in names if name.endswith('.py'))
    assert len(configs) >= 12
    for config in configs:
        kind = Config.fromfile(config).default_hooks.checkpoint.type
        assert kind in ('AtomicCheckpointHook',
                        'mmpretrain.AtomicCheckpointHook'), (config, kind)
