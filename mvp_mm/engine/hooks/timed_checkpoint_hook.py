"""A checkpoint every N minutes of wall time, also inside an epoch."""
import time

from mmengine.dist import is_main_process

from mmpretrain.registry import HOOKS

from .triggered_checkpoint_hook import (TriggeredCheckpointHook,
                                        ends_optimizer_step, max_over_ranks)


@HOOKS.register_module()
class TimedCheckpointHook(TriggeredCheckpointHook):
    """Save after the first optimizer step that ends ``interval_minutes``
    after the last checkpoint.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_: an ImageNet epoch of
    ViT-B/16 takes ~45 min on one GPU, so epoch checkpoints alone put that
    much work at risk on a cluster that kills jobs. This hook bounds it by
    wall time: ``timed_iter_N.pth`` (N = iterations done), a series apart
    from the epoch checkpoints with its own ``max_keep_ckpts``, written
    atomically and checked for NaN like every save
    (:class:`TriggeredCheckpointHook`); ``--resume`` picks the newest
    complete checkpoint of all series.

    The clock is rank 0's: it starts with training and restarts whenever
    rank 0 saves any checkpoint (an epoch checkpoint 10 minutes ago leaves
    20 of 30 minutes to go, so no timed save lands right after an epoch
    one). Rank 0's decision reaches the other ranks by one all-reduce of
    one number per iteration, so all save after the same iteration.

    Args:
        interval_minutes (float): Wall time between checkpoints. Defaults to
            30. Fractions are fine (tests: ``2 / 60``, two seconds).
        max_keep_ckpts (int): Timed checkpoints to keep; <= 0 keeps all.
            Defaults to 2.
        filename_tmpl (str): Defaults to ``'timed_iter_{}.pth'``.
        **kwargs: The other arguments of :class:`TriggeredCheckpointHook`.
    """

    kept_steps_key = 'keep_timed_ckpt_ids'
    default_filename_tmpl = 'timed_iter_{}.pth'

    def __init__(self,
                 interval_minutes: float = 30,
                 max_keep_ckpts: int = 2,
                 filename_tmpl: str = default_filename_tmpl,
                 **kwargs) -> None:
        if not interval_minutes > 0:
            raise ValueError(
                'TimedCheckpointHook: interval_minutes must be > 0, got '
                f'{interval_minutes}.')
        super().__init__(filename_tmpl, max_keep_ckpts, **kwargs)
        self.interval_minutes = interval_minutes
        self.last_save = time.monotonic()

    def before_train(self, runner) -> None:
        """Start the clock."""
        super().before_train(runner)
        self.last_save = time.monotonic()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Any checkpoint rank 0 saves restarts the clock."""
        self.last_save = time.monotonic()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Save if rank 0's clock says so (at a window's end)."""
        if not ends_optimizer_step(runner):
            return
        elapsed = time.monotonic() - self.last_save
        due = is_main_process() and elapsed >= 60 * self.interval_minutes
        if max_over_ranks(runner, float(due)):
            self.save_now(
                runner, f'{self.interval_minutes:g} min since the last '
                'checkpoint')
