"""Kill a training run mid-epoch (SIGKILL), rerun with --resume: the losses
after the resume equal those of the uninterrupted iterations."""
import os
import os.path as osp
import subprocess

import pytest
from reliability_tiny import REPO, TRAIN, logged_losses, reliable_tiny_cfg

from mvp_mm.utils import make_imagenet_folder

# 16 images, batch 4: 4 iterations an epoch. Checkpoint at 3 (mid-epoch 1);
# killed after iteration 6 is logged (mid-epoch 2) and before it is saved.
# The resumed run skips 3 batches and re-trains 4, 5, 6 across the epoch
# boundary; the killed run trained them uninterrupted from the same seed.
MAX_ITERS, CKPT_EVERY = 6, 3


def _train(config: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=osp.join(REPO, 'tests'))
    return subprocess.run(['python', TRAIN, config, *args], cwd=REPO,
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
