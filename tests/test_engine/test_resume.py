"""Kill a training run (SIGKILL), rerun with --resume: it continues from the
newest complete checkpoint, with the losses of the uninterrupted run; a
legacy-format (non-zip) checkpoint resumes too."""
import os
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import torch
from mmengine.runner import Runner
from reliability_tiny import REPO, TRAIN, logged_losses, reliable_tiny_cfg

import mvp_mm.engine.hooks.atomic_checkpoint_hook as hook_module
from mvp_mm.engine import check_checkpoint_file, resolve_resume
from mvp_mm.utils import make_imagenet_folder

# 16 images, batch 4: 4 iterations an epoch. Checkpoint at 3 (mid-epoch 1);
# killed after iteration 6 is logged (mid-epoch 2) and before it is saved.
# The resumed run skips 3 batches and re-trains 4, 5, 6 across the epoch
# boundary; the killed run trained them uninterrupted from the same seed.
MAX_ITERS, CKPT_EVERY = 6, 3


def _train(config: str, *args: str) -> subprocess.CompletedProcess:
    # this checkout's mvp_mm (not another install) and the test hooks
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([REPO, osp.join(REPO, 'tests')]))
    return subprocess.run([sys.executable, TRAIN, config, *args], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=300)


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 4, 4, 80)
    work = str(tmp_path / 'work')
    cfg = reliable_tiny_cfg(data, work, MAX_ITERS, CKPT_EVERY, num_workers=2)
    cfg.dump(str(tmp_path / 'resume_cfg.py'))
    cfg.custom_imports.imports.append('reliability_test_hooks')
    cfg.custom_hooks.append(
        dict(type='KillAtIterationHook', iteration=MAX_ITERS))
    cfg.dump(str(tmp_path / 'kill_cfg.py'))

    killed = _train(str(tmp_path / 'kill_cfg.py'))
    assert killed.returncode == -9, killed.stderr[-3000:]
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() == osp.join(work, f'iter_{CKPT_EVERY}.pth')
    uninterrupted = {r['iter']: r['loss'] for r in logged_losses(work)}
    assert sorted(uninterrupted) == list(range(1, MAX_ITERS + 1))

    # Resume in-process data loading instead of 2 workers: per-sample seeds
    # make the augmentations independent of the worker layout.
    resumed = _train(
        str(tmp_path / 'resume_cfg.py'), '--resume', '--cfg-options',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'iter: {CKPT_EVERY}' in resumed.stdout.split('resumed epoch')[1]
    rows = logged_losses(work)
    after_resume = rows[MAX_ITERS:]
    assert [r['iter'] for r in after_resume] == list(
        range(CKPT_EVERY + 1, MAX_ITERS + 1))
    for row in after_resume:
        assert row['loss'] == pytest.approx(uninterrupted[row['iter']],
                                            abs=1e-6)
    assert osp.isfile(osp.join(work, f'iter_{MAX_ITERS}.pth'))


class _Killed(BaseException):
    """The process dies (like SIGKILL, nothing after it runs)."""


def test_killed_before_last_checkpoint_resumes_epoch_1(tmp_path,
                                                      monkeypatch):
    """Killed after epoch_1.pth is renamed into place, before
    last_checkpoint is written: `tools/train.py --resume` continues from
    epoch_1 instead of starting from scratch."""
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 4, 4, 80)  # 16 images: 4 iterations/epoch
    work = str(tmp_path / 'work')
    cfg = reliable_tiny_cfg(data, work)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
    cfg.default_hooks.checkpoint.update(by_epoch=True, interval=1)
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    train = runpy.run_path(TRAIN)['main']

    def killed(path, text):
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(hook_module, 'write_text_atomically', killed)
        m.setattr(sys, 'argv', ['train.py', config])
        with pytest.raises(_Killed):
            train()
    # complete, but not recorded: no last_checkpoint
    assert sorted(n for n in os.listdir(work)
                  if '.pth' in n or 'checkpoint' in n) == ['epoch_1.pth']

    monkeypatch.setattr(sys, 'argv', ['train.py', config, '--resume'])
    train()
    # the killed run logged epoch 1 (iterations 1-4), the resumed one
    # epoch 2 (5-8), not 1-8 from scratch
    assert [r['iter'] for r in logged_losses(work)] == list(range(1, 9))
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work, 'epoch_2.pth')


def test_legacy_format_checkpoint_resumes(tmp_path):
    """torch.save(..., _use_new_zipfile_serialization=False) files are not
    zip files, and complete; a cut-short zip file is still refused."""
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 2, 4, 80)
    Runner.from_cfg(reliable_tiny_cfg(data, str(tmp_path / 'a'),
                                      max_iters=2)).train()
    legacy = str(tmp_path / 'a' / 'iter_2_legacy.pth')
    torch.save(torch.load(tmp_path / 'a' / 'iter_2.pth', weights_only=False),
               legacy, _use_new_zipfile_serialization=False)
    cut = str(tmp_path / 'a' / 'iter_2_cut.pth')
    with open(tmp_path / 'a' / 'iter_2.pth', 'rb') as f, \
            open(cut, 'wb') as g:
        g.write(f.read()[:-100])  # no zip directory
    with pytest.raises(ValueError, match='iter_2_cut.pth.*truncated'):
        check_checkpoint_file(cut)

    cfg = reliable_tiny_cfg(data, str(tmp_path / 'b'), max_iters=3)
    cfg.resume, cfg.load_from = True, legacy  # `--resume PATH`
    resolve_resume(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert [r['iter'] for r in logged_losses(str(tmp_path / 'b'))] == [3]
    assert torch.load(tmp_path / 'b' / 'iter_3.pth',
                      weights_only=False)['meta']['iter'] == 3
