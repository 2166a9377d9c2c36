"""Model randomness that a resumed run reproduces exactly."""
from typing import Optional

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

from ...datasets import ApplySampleSeed, SeededSampler
from ...utils.seeding import derive_seed, seed_global_rngs


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Re-seed the training process's RNGs before every iteration.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. mmengine seeds
    ``random``, numpy and torch once, at start-up, and does not checkpoint
    their states, so after ``--resume`` the model's own randomness (the
    student's drop path) would differ from an uninterrupted run. This hook
    seeds all three with ``derive_seed(runner.seed, rank, iteration)``
    before each training iteration: the draws of iteration ``i`` depend only
    on the seed, the rank and ``i``. Together with :class:`SeededSampler`
    and :class:`ApplySampleSeed` (the data side), a run resumed from
    ``iter_N.pth`` logs the same losses as one that was never interrupted.
    Ranks draw differently (the rank is a key even when
    ``randomness.diff_rank_seed`` is off). At the start of training it warns
    if that data side is missing.
    """

    priority = 'VERY_HIGH'  # before any other hook draws random numbers

    def before_train(self, runner) -> None:
        """Warn if the training data is not seeded per sample."""
        loader = runner.train_dataloader
        pipeline = getattr(getattr(loader, 'dataset', None), 'pipeline', None)
        applies = any(
            isinstance(t, ApplySampleSeed)
            for t in getattr(pipeline, 'transforms', []))
        if not (isinstance(loader.sampler, SeededSampler) and applies):
            runner.logger.warning(
                'Random crops and masks are not seeded per sample (the '
                'training data needs sampler=dict(type=\'SeededSampler\') '
                'and ApplySampleSeed first in its pipeline), so after '
                '--resume they will differ from an uninterrupted run.')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Seed ``random``, numpy and torch from (seed, rank, iteration)."""
        seed_global_rngs(derive_seed(runner.seed, get_rank(), runner.iter))
