"""tools/dist_train.sh with MAX_RESTARTS: a worker killed inside an epoch
(2 gloo CPU workers) makes torchrun restart the group, which resumes from
the newest complete checkpoint on its own; the run finishes with the
weights of an uninterrupted run."""
import os
import os.path as osp
import socket
import subprocess

import torch
from mmengine.runner import Runner
from reliability_tiny import REPO, logged_losses, reliable_tiny_cfg

from mvp_mm.utils import make_imagenet_folder

# 16 images, 2 workers x batch 2: 4 iterations an epoch, 2 epochs; a
# checkpoint every 3 iterations. Worker 1 is SIGKILLed after iteration 7
# (inside epoch 2), before it is saved: the restart resumes iter_6.pth.
EPOCHS, CKPT_EVERY, KILL_AT = 2, 3, 7


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def _cfg(data: str, work: str, batch_size: int):
    cfg = reliable_tiny_cfg(data, work, batch_size=batch_size,
                            checkpoint_interval=CKPT_EVERY)
    cfg.train_cfg = dict(type='ResumableEpochBasedTrainLoop',
                         max_epochs=EPOCHS)
    cfg.log_processor = dict(by_epoch=True)
    cfg.model.backbone.drop_path_rate = 0.0  # no per-rank model noise
    return cfg


def test_killed_worker_restarts_and_resumes(tmp_path):
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 4, 4, 80)
    work = str(tmp_path / 'dist')
    cfg = _cfg(data, work, batch_size=2)
    cfg.custom_imports.imports.append('cluster_test_hooks')
    cfg.custom_hooks.append(dict(type='SendSignalHook', signal_name='SIGKILL',
                                 iteration=KILL_AT, rank=1))
    cfg.dump(str(tmp_path / 'cfg.py'))
    env = dict(os.environ, PORT=_free_port(), MAX_RESTARTS='1',
               PYTHONPATH=osp.join(REPO, 'tests'), OMP_NUM_THREADS='1')
    result = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'),
         str(tmp_path / 'cfg.py'), '2'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert 'exitcode: -9' in output  # the kill happened
    assert 'TORCHELASTIC_RESTART_COUNT=1: a restarted run, so it resumes ' \
        f'as with `--resume`: from {work}/iter_{CKPT_EVERY * 2}.pth' in output
    steps = EPOCHS * 4
    # the first attempt logged 1..6 (killed before logging 7), the restart
    # 7..8: the rest of epoch 2, not the whole epoch again
    assert [r['iter'] for r in logged_losses(work)] == list(
        range(1, KILL_AT)) + list(range(CKPT_EVERY * 2 + 1, steps + 1))

    single = str(tmp_path / 'single')
    Runner.from_cfg(_cfg(data, single, batch_size=4)).train()
    restarted = torch.load(osp.join(work, f'iter_{steps}.pth'),
                           weights_only=False)
    uninterrupted = torch.load(osp.join(single, f'iter_{steps}.pth'),
                               weights_only=False)
    assert restarted['meta']['iter'] == uninterrupted['meta']['iter'] == steps
    for name, value in uninterrupted['state_dict'].items():
        assert torch.allclose(restarted['state_dict'][name], value,
                              atol=1e-6), name
