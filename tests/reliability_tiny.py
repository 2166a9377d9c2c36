"""Tiny pretraining configs for the reliability tests (resume, distributed,
bad input): tests/tiny.py's config with the reliability pipeline."""
import json
import os.path as osp
from glob import glob
from typing import List

import torch
from tiny import tiny_pretrain_cfg

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'tools', 'train.py')


def reliable_tiny_cfg(data_root: str,
                      work_dir: str,
                      max_iters: int = 6,
                      checkpoint_interval: int = 2,
                      batch_size: int = 4,
                      num_workers: int = 0,
                      on_error: str = 'raise'):
    """tiny_pretrain_cfg (per-sample seeding, checked image loading) in
    deterministic mode; iteration-based, a checkpoint every
    ``checkpoint_interval`` iterations."""
    cfg = tiny_pretrain_cfg(data_root, work_dir, max_iters=max_iters,
                            batch_size=batch_size)
    loader = cfg.train_dataloader.dataset.pipeline[1]
    assert loader['type'] == 'CheckedLoadImageFromFile'
    loader['on_error'] = on_error
    cfg.train_dataloader.num_workers = num_workers
    cfg.train_dataloader.persistent_workers = num_workers > 0
    cfg.default_hooks.checkpoint.interval = checkpoint_interval
    cfg.randomness = dict(seed=0, diff_rank_seed=True, deterministic=True)
    return cfg


def logged_losses(work_dir: str) -> List[dict]:
    """``[{'iter': i, 'loss': l}, ...]`` from every run's scalars.json in
    ``work_dir`` (a resumed run logs into a new timestamped folder)."""
    rows = []
    for path in sorted(glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    rows.append(dict(iter=row['iter'], loss=row['loss']))
    return rows
