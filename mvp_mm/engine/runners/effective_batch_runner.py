"""A Runner whose learning-rate scaling counts accumulated batches."""
import math
from typing import Dict, List, Optional

from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import RUNNERS
from mmengine.runner import BaseLoop, EpochBasedTrainLoop, Runner
from torch.utils.data import DataLoader


def optim_wrappers(optim_wrapper) -> List[OptimWrapper]:
    """The wrappers of an ``OptimWrapperDict``, or ``[optim_wrapper]``."""
    return list(optim_wrapper.values()) if isinstance(
        optim_wrapper, OptimWrapperDict) else [optim_wrapper]


def accumulative_counts(optim_wrapper) -> int:
    """The ``accumulative_counts`` of a built optimizer wrapper (or of all
    the wrappers of an ``OptimWrapperDict``, which must agree): how many
    iterations (batches) each optimizer step accumulates.

    Args:
        optim_wrapper (OptimWrapper | OptimWrapperDict): Built wrapper(s).

    Returns:
        int: The number of batches per optimizer step.
    """
    counts = {w._accumulative_counts for w in optim_wrappers(optim_wrapper)}
    if len(counts) != 1:
        raise ValueError(
            f'The optimizer wrappers accumulate {sorted(counts)} batches per '
            'step: with different accumulative_counts there is no one '
            'effective batch to scale the lr to. Give them the same '
            'accumulative_counts.')
    return counts.pop()


def train_batch_size(runner: Runner) -> int:
    """The batch size of one rank's training iteration."""
    loader = runner._train_dataloader
    return loader.batch_size if isinstance(loader, DataLoader) \
        else loader['batch_size']


@RUNNERS.register_module()
class EffectiveBatchRunner(Runner):
    """mmengine's ``Runner``, with ``auto_scale_lr`` following the effective
    batch ``world_size x batch_size x accumulative_counts``.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_, whose lr is given for
    a total batch of 2048 that a smaller cluster reaches by gradient
    accumulation (``optim_wrapper.accumulative_counts=N``, ``tools/train.py
    --accumulate N``). mmengine's ``Runner.scale_lr`` scales the lr by
    ``world_size x batch_size / base_batch_size`` and ignores the
    accumulation, which sets the lr N times too low
    (https://github.com/open-mmlab/mmengine/blob/v0.10.7/mmengine/runner/runner.py,
    ``scale_lr``). Here the ratio is ``world_size x batch_size x N /
    base_batch_size``, and every run logs, as training starts, one line with
    its effective batch, the lr it uses and, when accumulating, its number
    of optimizer steps. The configs name it with ``runner_type``, which
    ``tools/train.py`` and OpenMMLab's own train tools build
    (``RUNNERS.build(cfg)``);
    :class:`~mvp_mm.engine.OptimizerStepParamSchedulerHook` stops a run built
    by mmengine's ``Runner`` that would scale the lr without the
    accumulation. Same arguments as ``Runner``.
    """

    def scale_lr(self,
                 optim_wrapper: OptimWrapper,
                 auto_scale_lr: Optional[Dict] = None) -> None:
        """Scale the lr by ``effective batch / base_batch_size`` if
        ``auto_scale_lr.enable``; log the effective batch and the lr.

        Args:
            optim_wrapper (OptimWrapper | OptimWrapperDict): Built wrapper(s)
                whose parameter groups' lr is scaled.
            auto_scale_lr (dict, optional): ``base_batch_size`` and
                ``enable`` (default False). Defaults to None (no scaling).
        """
        wrappers = optim_wrappers(optim_wrapper)
        accumulate = accumulative_counts(optim_wrapper)
        batch = train_batch_size(self)
        effective = self.world_size * batch * accumulate
        how = 'as configured'
        if auto_scale_lr is not None and auto_scale_lr.get('enable', False):
            if 'base_batch_size' not in auto_scale_lr:
                raise KeyError(
                    'auto_scale_lr.enable=True needs '
                    'auto_scale_lr.base_batch_size, the total batch the '
                    "config's lr is for.")
            base = auto_scale_lr['base_batch_size']
            ratio = effective / base
            for wrapper in wrappers:
                for group in wrapper.optimizer.param_groups:
                    group['lr'] = group['lr'] * ratio
            how = (f'= the configured lr x {effective} / {base} '
                   '(auto_scale_lr: effective batch / base_batch_size)')
        lrs = [g['lr'] for w in wrappers for g in w.optimizer.param_groups]
        steps = ''
        if accumulate > 1 and isinstance(self._train_loop, BaseLoop):
            steps = (f'; {self._train_loop.max_iters} iterations = '
                     f'{math.ceil(self._train_loop.max_iters / accumulate)} '
                     'optimizer steps')
        self._warn_if_windows_straddle_epochs(accumulate)
        self.logger.info(
            f'Effective batch {effective} = {self.world_size} process(es) x '
            f'{batch} x {accumulate} accumulated; lr {max(lrs):.6g}'
            + (' (the largest parameter group)' if len(set(lrs)) > 1 else '')
            + f' {how}{steps}.')

    def _warn_if_windows_straddle_epochs(self, accumulate: int) -> None:
        """Accumulation windows run on across epoch ends (mmengine counts
        them over the whole run): say so when an epoch is not a whole
        number of them."""
        loop = self._train_loop
        if accumulate == 1 or not isinstance(loop, EpochBasedTrainLoop):
            return
        batches = len(loop.dataloader)
        if batches % accumulate:
            self.logger.warning(
                f'An epoch has {batches} batches, not a multiple of '
                f'accumulative_counts={accumulate}: accumulation windows '
                'straddle epoch ends, and a checkpoint at an epoch end falls '
                'inside a window (resuming from it loses the batches that '
                'window had accumulated). A batch size that makes the epoch a '
                'multiple of the window avoids both.')
