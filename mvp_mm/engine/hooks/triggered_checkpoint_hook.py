"""Checkpoints of a series of their own, at iterations all ranks agree on."""
import os
import os.path as osp
from collections import deque
from typing import Optional

import torch
from mmengine.dist import all_reduce, is_distributed, is_main_process
from mmengine.model import is_model_wrapper

from ..runners.effective_batch_runner import optim_wrappers
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .non_finite_guard_hook import NonFiniteGuardHook


def max_over_ranks(runner, value: float) -> float:
    """The largest ``value`` over all ranks: one all-reduce of one number
    on the model's device, and one host sync (none when not distributed).

    Args:
        runner (Runner): The runner.
        value (float): This rank's value.

    Returns:
        float: The maximum over the ranks.
    """
    if not is_distributed():
        return value
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    flag = torch.tensor([value], device=next(model.parameters()).device)
    all_reduce(flag, op='max')
    return float(flag.item())


def ends_optimizer_step(runner) -> bool:
    """Whether the iteration just run stepped the optimizer: every iteration
    without gradient accumulation, the last of each window of
    ``accumulative_counts`` with it. The same on every rank.

    Args:
        runner (Runner): The runner, in ``after_train_iter``.

    Returns:
        bool: True at the end of an accumulation window.
    """
    return all(wrapper.should_update()
               for wrapper in optim_wrappers(runner.optim_wrapper))


class TriggeredCheckpointHook(AtomicCheckpointHook):
    """Checkpoints between the interval ones, when a subclass's rule says.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_, whose 300-epoch runs
    outlast the jobs of shared clusters. The config's checkpoint hook saves
    every epoch; a subclass of this one saves in between, at the end of an
    iteration its own rule picks (wall time: :class:`TimedCheckpointHook`; a
    signal: :class:`SaveOnSignalHook`). The rule must give the same answer
    on every rank (each rank joins the same collectives), so subclasses
    decide with :func:`max_over_ranks`. The checkpoints are a series apart
    from the interval ones:

    - their own file names, ``filename_tmpl`` with N = iterations done
      (``meta.iter``, also inside an epoch);
    - their own ``max_keep_ckpts``: the kept steps are listed in the message
      hub (saved in every checkpoint) under the class's ``kept_steps_key``,
      so resuming restores each series' list and no series deletes
      another's files;
    - written like every :class:`AtomicCheckpointHook` save (``.partial``,
      fsync, rename, then ``last_checkpoint``), and checked first, on every
      rank together, by the config's :class:`NonFiniteGuardHook`, which
      stops all ranks rather than save broken weights.

    ``--resume`` continues from the newest complete checkpoint over all
    series (:func:`mvp_mm.engine.resolve_resume`). Runs after
    ``ParamSchedulerHook`` (priority ``VERY_LOW``, as ``CheckpointHook``),
    so the saved schedule is that of the finished iteration.

    Args:
        filename_tmpl (str): File name with ``{}`` for the iteration count.
        max_keep_ckpts (int): Checkpoints of this series to keep; <= 0 keeps
            all.
        out_dir (str, optional): As ``CheckpointHook``'s. Defaults to None:
            the work dir.
        save_optimizer (bool): Defaults to True.
        save_param_scheduler (bool): Defaults to True.
        backend_args (dict, optional): As ``CheckpointHook``'s. Defaults to
            None.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 filename_tmpl: str,
                 max_keep_ckpts: int,
                 out_dir: Optional[str] = None,
                 save_optimizer: bool = True,
                 save_param_scheduler: bool = True,
                 backend_args: Optional[dict] = None) -> None:
        if filename_tmpl.count('{}') != 1:
            raise ValueError(
                f'{type(self).__name__}: filename_tmpl must hold one "{{}}" '
                f'for the iteration count, got {filename_tmpl!r} (e.g. '
                "'timed_iter_{}.pth').")
        super().__init__(
            interval=-1, by_epoch=False, save_last=False, out_dir=out_dir,
            max_keep_ckpts=max_keep_ckpts, filename_tmpl=filename_tmpl,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            backend_args=backend_args)

    def before_train(self, runner) -> None:
        """Resolve the folder; restore this series' kept-checkpoint list
        (mmengine's would restore the interval checkpoints' one)."""
        keep, self.max_keep_ckpts = self.max_keep_ckpts, -1
        try:
            super().before_train(runner)
        finally:
            self.max_keep_ckpts = keep
        if keep <= 0:
            return
        kept = list(runner.message_hub.get_info(self.kept_steps_key, []))
        while len(kept) > keep:  # max_keep_ckpts lowered since that save
            path = osp.join(self.out_dir, self.filename_tmpl.format(
                kept.pop(0)))
            if self._is_local() and is_main_process() and osp.isfile(path):
                os.remove(path)
        self.keep_ckpt_ids = deque(kept, keep)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Subclasses decide here (``CheckpointHook``'s interval rule does
        not apply)."""

    def after_val_epoch(self, runner, metrics) -> None:
        """No best-checkpoint saving in this series."""

    def after_train(self, runner) -> None:
        """No model publishing from this series."""

    def save_now(self, runner, reason: str) -> str:
        """Check the weights (every rank), then save after this iteration.

        Call on every rank at once.

        Args:
            runner (Runner): The runner.
            reason (str): Why, for the log.

        Returns:
            str: The checkpoint's path.
        """
        steps = runner.iter + 1
        for hook in runner.hooks:
            if isinstance(hook, NonFiniteGuardHook):
                hook.check_weights_before_save(runner, steps)
        runner.logger.info(
            f'Saving checkpoint at {steps} iterations ({reason}).')
        self._save_checkpoint(runner)
        return self.last_ckpt
