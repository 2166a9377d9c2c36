"""Seed the global RNGs from the sample's own seed, before any augmentation."""
from mmcv.transforms import BaseTransform

from mmpretrain.registry import TRANSFORMS

from ...utils.seeding import seed_cpu_rngs
from ..samplers.seeded_sampler import SeededIndex


@TRANSFORMS.register_module()
class ApplySampleSeed(BaseTransform):
    """Seed ``random``, numpy and torch (CPU) with the seed
    :class:`SeededSampler` attached to this sample.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. Put it first in the
    training pipeline: the random transforms after it (crop and flip draw
    from numpy, :class:`BlockwiseMaskGenerator` from ``random``) then draw
    the same numbers for the same ``(seed, epoch, index)`` in any process,
    which makes ``--resume`` exact. It replaces ``results['sample_idx']``
    (a :class:`SeededIndex`) by a plain ``int``.

    If an earlier transform returned None (e.g. a skipped unreadable image)
    the dataset re-draws a replacement index from the numpy RNG seeded here;
    that plain index keeps the current RNG state, so the re-draw is
    reproducible too. A plain index first, though, means the sampler is not
    a :class:`SeededSampler`, which is an error.

    **Modified Keys:** ``sample_idx`` (``SeededIndex`` -> ``int``).
    """

    def __init__(self) -> None:
        self.seeded_once = False  # in this process

    def transform(self, results: dict) -> dict:
        """Seed the RNGs from ``results['sample_idx'].seed``."""
        index = results.get('sample_idx')
        if isinstance(index, SeededIndex):
            seed_cpu_rngs(index.seed)
            results['sample_idx'] = int(index)
            self.seeded_once = True
        elif not self.seeded_once:
            raise ValueError(
                'ApplySampleSeed got a plain sample index ('
                f'{index!r}): the dataloader does not use SeededSampler, so '
                'there is no per-sample seed. Set '
                "train_dataloader.sampler=dict(type='SeededSampler', "
                "shuffle=True), or remove ApplySampleSeed from the pipeline.")
        return results
