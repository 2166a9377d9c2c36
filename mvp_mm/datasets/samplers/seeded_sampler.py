"""A sampler whose indices carry the seed of each sample's augmentation."""
from typing import Iterator

import numpy as np

from mmpretrain.registry import DATA_SAMPLERS

from .resumable_sampler import ResumableSampler


class SeededIndex(int):
    """A dataset index that also carries its sample's augmentation seed.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. It is an ``int`` for
    every dataset; :class:`ApplySampleSeed` reads ``seed`` in the data worker
    that prepares the sample.

    Args:
        index (int): The dataset index.
        seed (int): The seed, in ``[0, 2**32)``.
    """

    def __new__(cls, index: int, seed: int) -> 'SeededIndex':
        obj = super().__new__(cls, index)
        obj.seed = seed
        return obj

    def __reduce__(self):
        return SeededIndex, (int(self), self.seed)  # to data workers

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed={self.seed})'


@DATA_SAMPLERS.register_module()
class SeededSampler(ResumableSampler):
    """A :class:`ResumableSampler` that also hands out per-sample seeds.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. mmengine seeds the
    data workers' RNGs once per worker (``worker_init_fn``) and checkpoints
    none of them, so after ``--resume`` random crops and masks differ from
    an uninterrupted run, and non-persistent workers repeat the same draws
    every epoch. Here the random augmentation of a sample is a pure function
    of ``(seed, epoch, index)``: each yielded index is a
    :class:`SeededIndex` whose seed comes from
    ``numpy.random.SeedSequence([seed, epoch])`` (one independent 32-bit
    seed per dataset index per epoch), and the pipeline's first transform,
    :class:`ApplySampleSeed`, seeds ``random``/numpy/torch with it. So:

    - a resumed run draws exactly the crops and masks of an uninterrupted
      one, whatever the number of workers or their persistence;
    - every sample, epoch, rank and worker draws differently (each sample
      has its own seed; ranks and workers process different samples), and
      the same seed repeats the same draws;
    - a sample's augmentation does not depend on the world size, so a run
      on 2 GPUs x 128 sees the same batches as one on 1 GPU x 256;
    - a pass can start part-way through the epoch
      (:meth:`ResumableSampler.set_start`): a run resumed mid-epoch continues
      with the epoch's next sample and its seed.

    Args: as ``DefaultSampler``: ``dataset``, ``shuffle`` (default True),
    ``seed`` (default None: mmengine's synchronised random seed, the same
    on every rank) and ``round_up`` (default True).
    """

    def __iter__(self) -> Iterator[SeededIndex]:
        seeds = np.random.SeedSequence([self.seed, self.epoch]).generate_state(
            len(self.dataset))  # [N] uint32, one per dataset index
        for index in super().__iter__():
            yield SeededIndex(index, int(seeds[index]))
