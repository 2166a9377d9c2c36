"""The lr schedule under gradient accumulation: one value per optimizer step,
the one the unaccumulated run would use."""
from typing import Optional

from mmengine.hooks import ParamSchedulerHook

from mmpretrain.registry import HOOKS

from ..runners.effective_batch_runner import (EffectiveBatchRunner,
                                              accumulative_counts,
                                              optim_wrappers,
                                              train_batch_size)


@HOOKS.register_module()
class OptimizerStepParamSchedulerHook(ParamSchedulerHook):
    """mmengine's ``ParamSchedulerHook``, stepping the iteration-based
    schedules at the end of each accumulation window.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. With
    ``optim_wrapper.accumulative_counts=N`` an iteration is one batch and
    the optimizer steps every N iterations; mmengine steps the
    iteration-based schedules (``by_epoch=False``, and the epoch-based ones
    that ``convert_to_iter_based`` counts in iterations) after every
    iteration, so the optimizer step that ends iteration ``kN + N - 1``
    uses the schedule's value there
    (https://github.com/open-mmlab/mmengine/blob/v0.10.7/mmengine/hooks/param_scheduler_hook.py).
    Here the schedules advance by the window's N iterations once the
    optimizer has stepped, so the whole window, and its optimizer step,
    uses the value at its first iteration ``kN``. For a schedule set in
    epochs, that is exactly the value of step ``k`` of the unaccumulated
    run with an N times larger batch (the same samples per epoch, N times
    the iterations). Iteration counts (``max_iters``, by-iteration
    ``begin``/``end``) stay iterations, i.e. batches. With N = 1 it is
    mmengine's hook.

    At the start of training it raises an error if ``auto_scale_lr`` is on,
    the run accumulates, and the runner is not an
    :class:`~mvp_mm.engine.EffectiveBatchRunner`: mmengine's ``Runner``
    scales the lr for the batch without the accumulation, N times too low.
    """

    def __init__(self) -> None:
        self._stepped_to = 0  # the iterations the schedules have advanced by

    def before_train(self, runner) -> None:
        """Refuse an lr scaled without the accumulation; note where the
        schedules stand (a resumed run: at its window's start)."""
        accumulate = accumulative_counts(runner.optim_wrapper)
        scale = runner.auto_scale_lr or {}
        if accumulate > 1 and scale.get('enable', False) and \
                not isinstance(runner, EffectiveBatchRunner):
            batch = runner.world_size * train_batch_size(runner)
            raise RuntimeError(
                f'auto_scale_lr with accumulative_counts={accumulate}: '
                f"{type(runner).__name__} scaled the lr for a batch of "
                f'{batch}, not the effective {batch * accumulate}, so it is '
                f'{accumulate} times too low. Build the runner that the '
                "config names, runner_type='EffectiveBatchRunner' "
                '(tools/train.py and the OpenMMLab train tools do: '
                '`RUNNERS.build(cfg)`), not `Runner.from_cfg(cfg)`.')
        self._stepped_to = runner.iter - runner.iter % accumulate

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """After an optimizer step, advance the iteration-based schedules
        by the iterations it accumulated."""
        stepped = any(
            w.should_update() for w in optim_wrappers(runner.optim_wrapper))
        if runner.param_schedulers is None or not stepped:
            return
        schedulers = runner.param_schedulers
        groups = schedulers.values() if isinstance(schedulers, dict) \
            else [schedulers]
        for _ in range(runner.iter + 1 - self._stepped_to):
            for group in groups:
                for scheduler in group:
                    if not scheduler.by_epoch:
                        scheduler.step()
        self._stepped_to = runner.iter + 1
