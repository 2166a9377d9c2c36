"""Stop on a NaN/Inf loss, with the iteration number, before it is saved."""
from typing import Optional

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training on a non-finite loss; under AMP count skipped steps.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. mmengine trains on
    through a NaN loss: the weights turn to NaN and every later checkpoint
    is garbage. This hook checks the loss after every iteration, before the
    checkpoint hook runs:

    - fp32 / bf16 without a loss scaler: the first non-finite loss raises
      ``RuntimeError`` naming the iteration and the last checkpoint, so no
      broken checkpoint is written and ``--resume`` restarts from a good one.
    - AMP (``AmpOptimWrapper``, dynamic loss scale): a step with non-finite
      gradients is skipped by the loss scaler, which is how fp16 training
      works; each skip is logged with a running count (kept in the message
      hub, so in checkpoints). Only ``amp_patience`` non-finite losses in a
      row, which loss scaling cannot cure, stop the run.

    In distributed runs the ranks agree (one all-reduce of a flag), so all of
    them stop together instead of hanging in the next all-reduce.

    Args:
        amp_patience (int): Under AMP, stop after this many consecutive
            iterations with a non-finite loss. Defaults to 10.
    """

    priority = 'ABOVE_NORMAL'  # before LoggerHook / CheckpointHook

    def __init__(self, amp_patience: int = 10) -> None:
        if amp_patience < 1:
            raise ValueError(
                f'NonFiniteLossHook: amp_patience must be >= 1, got '
                f'{amp_patience}.')
        self.amp_patience = amp_patience
        self.non_finite_in_a_row = 0
        self.scale_before: Optional[float] = None

    @staticmethod
    def _loss_scale(runner) -> Optional[float]:
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        return None if scaler is None else float(scaler.get_scale())

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Remember the loss scale, to see whether this step is skipped."""
        self.scale_before = self._loss_scale(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Raise on a non-finite loss (fp32), count skipped steps (AMP)."""
        if not outputs or 'loss' not in outputs:
            return
        loss = outputs['loss'].detach()
        flag = (~torch.isfinite(loss).all()).float().reshape(1)
        if is_distributed():
            all_reduce(flag)  # non-zero if any rank saw a non-finite loss
        non_finite = bool(flag.item())
        iteration = runner.iter + 1  # 1-based, as in the log
        scale_after = self._loss_scale(runner)
        if scale_after is None:
            if non_finite:
                raise RuntimeError(self._message(runner, loss, iteration))
            return
        if self.scale_before is not None and scale_after < self.scale_before:
            skipped = runner.message_hub.get_info('amp_skipped_steps', 0) + 1
            runner.message_hub.update_info('amp_skipped_steps', skipped)
            runner.logger.warning(
                f'AMP: non-finite gradients at iteration {iteration} (loss '
                f'{loss.item():.4g}); the loss scaler skipped this step and '
                f'lowered the loss scale {self.scale_before:g} -> '
                f'{scale_after:g}. Skipped steps so far: {skipped}.')
        self.non_finite_in_a_row = self.non_finite_in_a_row + 1 \
            if non_finite else 0
        if self.non_finite_in_a_row >= self.amp_patience:
            raise RuntimeError(
                self._message(runner, loss, iteration) +
                f' Under AMP the loss was non-finite {self.amp_patience} '
                'iterations in a row, which loss scaling cannot fix.')

    @staticmethod
    def _message(runner, loss: torch.Tensor, iteration: int) -> str:
        last = runner.message_hub.get_info('last_ckpt', None)
        restart = (f'The last checkpoint is {last}; rerun with --resume to '
                   'restart from it' if last else
                   'No checkpoint was written yet; rerun from scratch')
        return (
            f'Non-finite loss ({loss.item()}) at iteration {iteration} '
            f'(epoch {runner.epoch + 1}): training stopped so that no NaN '
            f'weights are saved. {restart} after the fix. Usual causes: '
            'too high a learning rate (lower optim_wrapper.optimizer.lr or '
            'lengthen the warm-up), no gradient clipping '
            '(optim_wrapper.clip_grad=dict(max_norm=3.0)), fp16 overflow '
            '(use --amp, which skips such steps, or bf16), or corrupt input '
            'images.')
