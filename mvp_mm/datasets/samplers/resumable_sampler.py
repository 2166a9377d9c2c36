"""A sampler that can begin an epoch part-way, for exact mid-epoch resume."""
import itertools
from typing import Iterator

from mmengine.dataset import DefaultSampler

from mmpretrain.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` that can start its next pass part-way.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. A run resumed from a
    checkpoint taken inside an epoch must see the rest of that epoch's
    samples, in the same order, and no others.
    :class:`mvp_mm.engine.ResumableEpochBasedTrainLoop` calls
    :meth:`set_start` with the number of this rank's samples already trained
    in the epoch; the next pass over the sampler yields the epoch's indices
    (the same permutation as ``DefaultSampler``'s for the same seed and
    epoch) from that position on, and the skipped samples are never loaded.
    Later passes start at 0 again.

    ``len()`` stays the epoch's full number of samples of this rank, so the
    data loader's length is the epoch's number of iterations during the
    resumed epoch too (the loop numbers the resumed batches from the start
    position; hooks and logs that count batches in an epoch stay right).

    Args: as ``DefaultSampler``: ``dataset``, ``shuffle`` (default True),
    ``seed`` (default None: mmengine's synchronised random seed, the same
    on every rank) and ``round_up`` (default True).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._start = 0

    def set_start(self, start: int) -> None:
        """Begin the next pass at this rank's ``start``-th index.

        Args:
            start (int): How many of this rank's indices of the epoch to
                skip, in ``[0, len(self)]``.
        """
        if not 0 <= start <= self.num_samples:
            raise ValueError(
                f'ResumableSampler.set_start({start}): this rank has '
                f'{self.num_samples} samples an epoch, so the start must be '
                f'in [0, {self.num_samples}].')
        self._start = start

    def __iter__(self) -> Iterator[int]:
        """This rank's indices of the epoch, from the start position on."""
        start, self._start = self._start, 0
        return itertools.islice(super().__iter__(), start, None)
