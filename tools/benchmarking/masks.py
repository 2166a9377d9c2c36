"""Masks per second: :class:`BlockwiseMaskGenerator` against mmpretrain's
``BEiTMaskGenerator``, with the config's settings."""
import random
import statistics

import numpy as np
from mmengine.config import Config

from mmpretrain.datasets.transforms import BEiTMaskGenerator
from mvp_mm.datasets.transforms import BlockwiseMaskGenerator

from .timing import paired_ratio, time_interleaved


def mask_settings(cfg: Config) -> dict:
    """The config's mask generator settings (the class defaults if none)."""
    for transform in cfg.train_dataloader.dataset.get('pipeline', []):
        if transform.get('type') == 'BlockwiseMaskGenerator':
            return {
                k: v
                for k, v in transform.items()
                if k not in ('type', 'input_size', '_scope_')
            }
    return dict()


def benchmark_masks(cfg: Config, grid: int, count: int, rounds: int):
    """Masks per second, ours vs mmpretrain's, interleaved."""
    settings = mask_settings(cfg)
    ours = BlockwiseMaskGenerator(input_size=grid, **settings)
    theirs = BEiTMaskGenerator(input_size=grid, **settings)
    random.seed(0)
    np.random.seed(0)

    def run(generator):
        def generate():
            for _ in range(count):
                generator.transform({})
        return generate

    times = time_interleaved(
        dict(ours=run(ours), mmpretrain=run(theirs)), rounds, 1, 'cpu')
    return dict(
        ours_per_s=count / statistics.median(times['ours']),
        mmpretrain_per_s=count / statistics.median(times['mmpretrain']),
        ratio=paired_ratio(times, 'mmpretrain', 'ours'))
