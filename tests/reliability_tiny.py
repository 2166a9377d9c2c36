"""Tiny pretraining configs for the reliability tests (resume, distributed,
bad input): tests/tiny.py's config with the reliability pipeline."""
import json
import os.path as osp
from collections import OrderedDict
from glob import glob
from typing import List

import pytest
import torch
from mmengine.registry import DefaultScope
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
    """tiny_pretrain_cfg with per-sample seeding, checked image loading and
    deterministic mode; iteration-based, a checkpoint every
    ``checkpoint_interval`` iterations."""
    cfg = tiny_pretrain_cfg(data_root, work_dir, max_iters=max_iters,
                            batch_size=batch_size)
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline[0]['type'] == 'LoadImageFromFile'
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='ApplySampleSeed'),
        dict(type='CheckedLoadImageFromFile', on_error=on_error),
        *pipeline[1:]
    ]
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


@pytest.fixture(autouse=True)
def isolated_global_state():
    """Leave no trace for other test files: the runners built here create a
    'mmpretrain' DefaultScope (registries would otherwise keep building in
    it) and turn torch's deterministic mode on."""
    scopes = OrderedDict(DefaultScope._instance_dict)
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(scopes)
    torch.use_deterministic_algorithms(deterministic)
