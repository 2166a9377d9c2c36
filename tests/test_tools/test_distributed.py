"""tools/dist_train.sh on CPU (gloo, 2 processes), the process group torn
down at exit, and per-sample seeding across ranks, workers, epochs and
runs."""
import glob
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from devices import TWO_GPU_MARKS
from mmengine.dataset import pseudo_collate, worker_init_fn
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from reliability_tiny import REPO, logged_losses, reliable_tiny_cfg
from torch.utils.data import DataLoader

from mmpretrain.registry import DATASETS, DATA_SAMPLERS
from mvp_mm.utils import make_imagenet_folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda',
                                                         marks=TWO_GPU_MARKS)])
def test_dist_train_two_processes_match_one_process(tmp_path, device):
    """CPU: gloo. CUDA (2 GPUs): NCCL, fp32 (cuDNN's convolutions may use
    TF32, ~1e-3 relative, and pick other algorithms for other batch sizes:
    the losses then agree to 1e-3, not 1e-5)."""
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 2, 4, 80)

    def cfg(work_dir, batch_size):
        c = reliable_tiny_cfg(data, work_dir, max_iters=2,
                              checkpoint_interval=2, batch_size=batch_size)
        c.model.backbone.drop_path_rate = 0.0  # no per-rank model noise
        if device == 'cuda':
            c.env_cfg.dist_cfg.backend = 'nccl'
            # cuBLAS and the fused attention's backward have no
            # deterministic mode without extra settings; not needed here
            c.randomness.deterministic = False
        return c

    # 2 processes x batch 2, through the real launcher script
    dist_work = str(tmp_path / 'dist')
    dist_cfg = cfg(dist_work, batch_size=2)
    dist_cfg.custom_imports.imports.append('reliability_test_hooks')
    dist_cfg.custom_hooks.append(dict(type='RecordFirstLossHook'))
    dist_cfg.dump(str(tmp_path / 'dist_cfg.py'))

    env = dict(os.environ, PORT=str(_free_port()),
               PYTHONPATH=osp.join(REPO, 'tests'), OMP_NUM_THREADS='1')
    result = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'),
         str(tmp_path / 'dist_cfg.py'), '2'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert 'Distributed training: True' in result.stdout
    # one checkpoint (rank 0 writes), complete, nothing half-written
    assert sorted(osp.basename(p) for p in glob.glob(
        osp.join(dist_work, '*.pth*'))) == ['iter_2.pth']
    assert torch.load(osp.join(dist_work, 'iter_2.pth'))['meta']['iter'] == 2
    rank_losses = []
    for rank in (0, 1):
        with open(osp.join(dist_work, f'first_loss_rank{rank}.json')) as f:
            rank_losses.append(json.load(f)['loss'])

    # 1 process x batch 4: the same global batch, same crops and masks
    single_work = str(tmp_path / 'single')
    Runner.from_cfg(cfg(single_work, batch_size=4)).train()
    single = logged_losses(single_work)[0]['loss']
    tolerance = 1e-3 if device == 'cuda' else 1e-5
    assert single == pytest.approx(np.mean(rank_losses), abs=tolerance)
    assert rank_losses[0] != pytest.approx(rank_losses[1], abs=1e-4)


# A rank as the stock tools/train.py of mmpretrain / mmseg runs it under
# torchrun: `import mvp_mm` (custom_imports), mmengine's init_dist, and no
# destroy_process_group. The first exit handler runs last (LIFO).
_RANK = """
import atexit, os, sys, time
import torch.distributed as dist
atexit.register(lambda: print('initialized at exit:', dist.is_initialized()))
import mvp_mm
from mmengine.dist import init_dist
init_dist('pytorch')
print('initialized:', dist.is_initialized(), flush=True)
if sys.argv[1] == 'crash':
    # Both ranks are through init_process_group first: rank 0 can return
    # from gloo's connectFullMesh while rank 1 is still in it, and leaving
    # then fails rank 1's init ('Connection closed by peer').
    dist.barrier()
    if os.environ['RANK'] == '0':
        raise RuntimeError('rank 0 crashed')
    while not os.path.exists(sys.argv[2]):  # until the test says so
        time.sleep(0.1)
"""


def _start_ranks(*args: str) -> list:
    port = str(_free_port())
    return [
        subprocess.Popen(
            [sys.executable, '-c', _RANK, *args], cwd=REPO,
            env=dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank),
                     WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                     MASTER_PORT=port, OMP_NUM_THREADS='1'),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in (0, 1)
    ]


def test_process_group_is_destroyed_at_exit(tmp_path):
    """mmengine never destroys the gloo group; left to interpreter shutdown
    it aborts a rank now and then (SIGABRT, exit 1 after training). The
    CPU launch layer destroys it at exit: after a barrier on a normal exit,
    at once after a crash, and without hanging when a peer is gone."""
    release = str(tmp_path / 'release')
    normal, crash = _start_ranks('normal'), _start_ranks('crash', release)
    for rank in normal:
        out = rank.communicate(timeout=240)[0]
        assert rank.returncode == 0, out[-3000:]
        assert 'initialized: True' in out
        assert 'initialized at exit: False' in out

    # rank 0 crashes and leaves at once, not waiting for rank 1 (which
    # waits for the test until rank 0 is gone)
    out = crash[0].communicate(timeout=240)[0]
    assert crash[0].returncode == 1 and 'rank 0 crashed' in out, out[-3000:]
    assert 'initialized at exit: False' in out
    open(release, 'w').close()
    out = crash[1].communicate(timeout=240)[0]  # its peer is gone
    assert crash[1].returncode == 0, out[-3000:]
    assert 'Leaving the process group without the other ranks' in out
    assert 'initialized at exit: False' in out


def _draws(data_root: str, rank: int, seed: int, epoch: int = 0) -> list:
    """(image, mask) of every sample rank ``rank`` of 2 sees, loaded by 2
    workers seeded as mmengine seeds them."""
    init_default_scope('mmpretrain')
    dataset = DATASETS.build(
        dict(type='CustomDataset', data_root=data_root, data_prefix='train',
             pipeline=[
                 dict(type='ApplySampleSeed'),
                 dict(type='CheckedLoadImageFromFile'),
                 dict(type='RandomResizedCrop', scale=32, backend='pillow'),
                 dict(type='RandomFlip', prob=0.5),
                 dict(type='BlockwiseMaskGenerator', input_size=14,
                      num_masking_patches=75, min_num_patches=16),
                 dict(type='PackInputs')
             ]))
    sampler = DATA_SAMPLERS.build(
        dict(type='SeededSampler', dataset=dataset, shuffle=True, seed=seed))
    sampler.rank, sampler.world_size = rank, 2  # as under torchrun
    sampler.num_samples = sampler.total_size // 2
    sampler.set_epoch(epoch)
    loader = DataLoader(
        dataset, batch_size=1, sampler=sampler, num_workers=2,
        collate_fn=pseudo_collate,
        worker_init_fn=lambda i: worker_init_fn(i, 2, rank, seed + rank))
    return [(batch['inputs'][0], batch['data_samples'][0].mask,
             batch['data_samples'][0].sample_idx) for batch in loader]


def test_crops_and_masks_differ_across_ranks_workers_and_repeat(tmp_path):
    # 8 copies of ONE image: outputs differ only through the random draws
    make_imagenet_folder(str(tmp_path / 'one'), 1, 1, 48)
    image = glob.glob(str(tmp_path / 'one' / 'train' / '*' / '*'))[0]
    os.makedirs(tmp_path / 'same' / 'train' / 'n0')
    for i in range(8):
        shutil.copy(image, tmp_path / 'same' / 'train' / 'n0' / f'{i}.JPEG')
    root = str(tmp_path / 'same')

    rank0, rank1 = _draws(root, 0, seed=3), _draws(root, 1, seed=3)
    assert len(rank0) == len(rank1) == 4
    draws = rank0 + rank1  # 2 ranks x 2 workers x 2 samples each
    for i in range(len(draws)):
        for j in range(i + 1, len(draws)):
            assert not torch.equal(draws[i][0], draws[j][0])  # crop + flip
            assert not torch.equal(draws[i][1], draws[j][1])  # mask

    again = _draws(root, 0, seed=3)
    for (img, mask, idx), (img2, mask2, idx2) in zip(rank0, again):
        assert idx == idx2
        assert torch.equal(img, img2) and torch.equal(mask, mask2)
    other_seed = _draws(root, 0, seed=4)
    assert not all(
        torch.equal(a[1], b[1]) for a, b in zip(rank0, other_seed))
    # the next epoch draws anew for the same images
    next_epoch = {d[2]: d[1] for d in _draws(root, 0, seed=3, epoch=1)}
    assert not any(
        torch.equal(mask, next_epoch[idx]) for _, mask, idx in rank0
        if idx in next_epoch)


def test_cpu_launch_layer_leaves_gpu_machines_alone(monkeypatch):
    import mmengine.dist.utils as dist_utils

    import mvp_mm.compat.cpu_distributed as layer
    before = dist_utils._init_dist_pytorch
    monkeypatch.setattr(layer, 'get_device', lambda: 'cuda')
    assert layer.install_cpu_distributed_launch() is False
    assert dist_utils._init_dist_pytorch is before


def test_cpu_ddp_wrap_reverts_sync_batchnorm(tmp_path):
    """mmseg's UperNet uses SyncBN, which DDP refuses on CPU."""
    import torch.distributed as torch_dist
    from mmengine.model.wrappers import MMDistributedDataParallel

    from mvp_mm.compat.cpu_distributed import install_cpu_distributed_launch
    assert install_cpu_distributed_launch()
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/rendezvous', rank=0,
        world_size=1)
    try:
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1),
                                    torch.nn.SyncBatchNorm(4))
        ddp = MMDistributedDataParallel(module=model)
        assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                       for m in ddp.module.modules())
        assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in ddp.module.modules())
    finally:
        torch_dist.destroy_process_group()
