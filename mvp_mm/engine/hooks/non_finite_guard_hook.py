"""Nothing non-finite is loaded into a run, stepped on, or saved."""
import math
import os.path as osp
from typing import List, Optional

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import nn

from mmpretrain.registry import HOOKS

from ...utils.non_finite import (abs_max, check_finite_state_dict,
                                 describe_non_finite, list_head)

CAUSES = (
    'Usual causes: too high a learning rate (lower '
    'optim_wrapper.optimizer.lr, lengthen the warm-up, check '
    'param_scheduler), no gradient clipping '
    '(optim_wrapper.clip_grad=dict(max_norm=3.0)), fp16 overflow (use '
    '--amp, which skips such steps, or bf16), or corrupt input images.')


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Stop a run before a non-finite or exploded step is used or saved.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. mmengine trains on
    through NaN: the weights turn to NaN and every later checkpoint is
    garbage. This hook checks:

    - on load (``--resume`` / ``load_from``, also ``tools/test.py``): every
      tensor of the checkpoint's ``state_dict``; NaN / Inf is a
      ``ValueError`` naming the tensors;
    - after every iteration, before the logger and checkpoint hooks: the
      loss, and the gradient norm that mmengine's ``OptimWrapper`` logs when
      ``clip_grad=dict(max_norm=...)`` is set (``train/grad_norm``, only in
      iterations where the optimizer stepped). Without ``clip_grad`` nothing
      computes that norm, and neither does this hook (it would cost a pass
      over all gradients each step): a NaN gradient then shows as a NaN loss
      one iteration later, or as NaN weights at the save check below;
    - before each checkpoint is saved: every floating tensor of the model is
      finite, and no trained parameter exceeds ``max_abs_weight`` in
      absolute value (an lr spike leaves finite but exploded weights). The
      check runs on every rank, right before ``CheckpointHook`` saves (its
      own interval rule, for iteration and epoch saves alike), so nothing is
      written or deleted; any other save (``save_best``, another hook) is
      checked in ``before_save_checkpoint`` on the saving rank.

    What fails stops the run with ``RuntimeError`` naming the iteration, the
    tensors and the last checkpoint this hook found finite (not mmengine's
    ``last_ckpt``, which already names a file being refused), so
    ``--resume PATH`` restarts from a good one.

    Under AMP (``AmpOptimWrapper``) a step with non-finite gradients is
    skipped by the loss scaler, which is how fp16 training works: a
    non-finite gradient norm, or a drop of the loss scale, is logged as a
    skipped step with a running count (kept in the message hub, so in
    checkpoints). Only ``amp_patience`` non-finite losses in a row, which
    loss scaling cannot cure, stop the run.

    Distributed runs agree: one all-reduce of a 4-element flag per
    iteration (and one before each epoch checkpoint), read after
    ``RuntimeInfoHook`` has already waited for the step (so no extra stall),
    and all ranks stop together. The gradient norm is that of the
    all-reduced gradients, the same on every rank.

    Args:
        max_abs_weight (float): A trained parameter larger than this in
            absolute value is "exploded". Defaults to 1e4: ViT weights are
            O(1) (init std 0.02, LayerNorm gains 1, layer scale 0.1), and
            AdamW moves a weight by at most a few lr per step (its update
            m / sqrt(v) is O(1)); the paper's schedules add up to at most
            500 x lr (fine-tuning: 125k steps at 4e-3), so a healthy run
            stays below ~2e3. 1e4 leaves that margin, yet sits below fp16's
            largest value (65504), where AMP activations overflow.
        amp_patience (int): Under AMP, stop after this many consecutive
            iterations with a non-finite loss. Defaults to 10.
    """

    priority = 'ABOVE_NORMAL'  # before LoggerHook and CheckpointHook

    def __init__(self, max_abs_weight: float = 1e4,
                 amp_patience: int = 10) -> None:
        if not max_abs_weight > 0:
            raise ValueError(
                f'NonFiniteGuardHook: max_abs_weight must be > 0, got '
                f'{max_abs_weight}.')
        if amp_patience < 1:
            raise ValueError(
                f'NonFiniteGuardHook: amp_patience must be >= 1, got '
                f'{amp_patience}.')
        self.max_abs_weight = max_abs_weight
        self.amp_patience = amp_patience
        self.non_finite_in_a_row = 0
        self.scale_before: Optional[float] = None
        self.loaded_checked = False
        # The last checkpoint whose weights passed the save check (after
        # --resume: the load check), and the iterations done at that check.
        self.last_finite: Optional[str] = None
        self.checked_steps: Optional[int] = None
        self.save_pending = False

    # ------------------------------------------------------------ load
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse a ``--resume`` / ``load_from`` file with NaN / Inf."""
        path = runner.cfg.get('load_from')
        check_finite_state_dict(
            checkpoint.get('state_dict', checkpoint),
            f'The checkpoint {path!r}' if path else
            'The --resume / load_from checkpoint',
            'Resume from an earlier checkpoint of that run instead: '
            'NonFiniteGuardHook\'s error in its training log names the last '
            'checkpoint with finite weights.')
        self.loaded_checked = True

    def before_train(self, runner) -> None:
        """After ``--resume``, the message hub names the checkpoint this run
        continues from, whose weights were found finite on load."""
        if self.loaded_checked:
            self.last_finite = runner.message_hub.get_info('last_ckpt', None)

    # ------------------------------------------------------------ train
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
        """Check loss and gradient norm; the weights if a save follows."""
        self._note_checked_save(runner)
        save_due = self._checkpoint_due(runner, by_epoch=False)
        loss = outputs.get('loss') if outputs else None
        loss_bad, weights_bad, exploded, max_abs = self._reduced_flags(
            runner, loss, check_weights=save_due)
        grad_norm = self._grad_norm(runner)
        grad_bad = grad_norm is not None and not math.isfinite(grad_norm)
        scale_after = self._loss_scale(runner)
        if scale_after is not None:
            self._count_amp_skip(runner, loss, loss_bad, grad_norm,
                                 scale_after)
        elif loss_bad or grad_bad:
            raise RuntimeError(
                self._step_message(runner, loss, loss_bad, grad_norm))
        if save_due:
            self._pass_weights(runner, weights_bad, exploded, max_abs,
                               runner.iter + 1)

    def after_train_epoch(self, runner) -> None:
        """Check the weights if an epoch checkpoint follows."""
        self._note_checked_save(runner)
        if self._checkpoint_due(runner, by_epoch=True):
            _, weights_bad, exploded, max_abs = self._reduced_flags(
                runner, None, check_weights=True)
            self._pass_weights(runner, weights_bad, exploded, max_abs,
                               runner.iter)

    def check_weights_before_save(self, runner, steps: int) -> None:
        """Check the weights on every rank before a save that no interval
        rule foresees (a wall-clock or a signal checkpoint, see
        :class:`TriggeredCheckpointHook`): one all-reduce, and all ranks stop
        together if the weights are broken. Called by such hooks on every
        rank at once; weights already checked after ``steps`` iterations
        are not checked again.

        Args:
            runner (Runner): The runner.
            steps (int): Iterations done, as the checkpoint's ``meta.iter``.
        """
        if steps == self.checked_steps:
            return
        _, weights_bad, exploded, max_abs = self._reduced_flags(
            runner, None, check_weights=True)
        self._pass_weights(runner, weights_bad, exploded, max_abs, steps)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check a save the rules above did not foresee; note the file."""
        steps = checkpoint.get('meta', {}).get('iter')
        if steps is None or steps != self.checked_steps:
            # Only the saving rank is here: no all-reduce.
            weights_bad, exploded, max_abs = self._weight_flags(
                self._model(runner)).tolist()
            self._pass_weights(runner, weights_bad > 0, exploded > 0,
                               max_abs, steps)
        self.last_finite = runner.message_hub.get_info(
            'last_ckpt', self.last_finite)

    # ------------------------------------------------------------ checks
    @staticmethod
    def _model(runner) -> nn.Module:
        return runner.model.module if is_model_wrapper(runner.model) \
            else runner.model

    @staticmethod
    def _loss_scale(runner) -> Optional[float]:
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        return None if scaler is None else float(scaler.get_scale())

    @staticmethod
    def _grad_norm(runner) -> Optional[float]:
        """The gradient norm the optimizer wrapper logged in this iteration
        (``clip_grad`` of type norm, and the optimizer stepped), or None."""
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if isinstance(
            wrapper, OptimWrapperDict) else [wrapper]
        logged = runner.message_hub.log_scalars.get('train/grad_norm')
        if logged is None or not any(
                getattr(w, 'clip_grad_kwargs', None)
                and getattr(w, 'grad_name', None) == 'grad_norm'
                and w.should_update() for w in wrappers):
            return None
        return logged.current()

    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether a ``CheckpointHook`` saves right after this hook, by its
        own rule (mmengine v0.10.7, ``CheckpointHook.after_train_iter`` /
        ``after_train_epoch``,
        https://github.com/open-mmlab/mmengine/blob/v0.10.7/mmengine/hooks/checkpoint_hook.py)."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or \
                    hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                due = hook.every_n_epochs(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _weight_flags(self, model: nn.Module) -> torch.Tensor:
        """``[non-finite, exploded, max |w|]`` over the model's floating
        tensors (max |w| and "exploded": trained parameters only), as one
        tensor on the model's device, without a host sync."""
        device = next(model.parameters()).device
        maxima, trained = [], []
        for value in model.state_dict(keep_vars=True).values():
            if not (value.is_floating_point() and value.numel()):
                continue
            maxima.append(abs_max(value).to(device, torch.float32))
            if isinstance(value, nn.Parameter) and value.requires_grad:
                trained.append(maxima[-1])
        zero = torch.zeros((), device=device)
        largest = torch.stack(maxima).max() if maxima else zero
        largest_trained = torch.stack(trained).max() if trained else zero
        return torch.stack([
            (~torch.isfinite(largest)).float(),
            (largest_trained > self.max_abs_weight).float(),
            largest_trained
        ])

    def _reduced_flags(self, runner, loss: Optional[torch.Tensor],
                       check_weights: bool) -> List:
        """``[loss non-finite, weights non-finite, weights exploded, max
        |w|]``, the max over ranks: one all-reduce, one host sync."""
        model = self._model(runner)
        if check_weights:
            weight_flags = self._weight_flags(model)
        else:
            weight_flags = torch.zeros(
                3, device=loss.device if loss is not None else next(
                    model.parameters()).device)
        loss_flag = torch.zeros(1, device=weight_flags.device) \
            if loss is None else (~torch.isfinite(loss.detach()).all()).to(
                weight_flags.device, torch.float32).reshape(1)
        flags = torch.cat([loss_flag, weight_flags])
        if is_distributed():
            all_reduce(flags, op='max')
        loss_bad, weights_bad, exploded, max_abs = flags.tolist()
        return [loss_bad > 0, weights_bad > 0, exploded > 0, max_abs]

    def _count_amp_skip(self, runner, loss: Optional[torch.Tensor],
                        loss_bad: bool, grad_norm: Optional[float],
                        scale_after: float) -> None:
        """Under a loss scaler: log a skipped step; stop on persistent NaN."""
        iteration = runner.iter + 1  # 1-based, as in the log
        dropped = self.scale_before is not None and \
            scale_after < self.scale_before
        if dropped or (grad_norm is not None and not math.isfinite(grad_norm)):
            skipped = runner.message_hub.get_info('amp_skipped_steps', 0) + 1
            runner.message_hub.update_info('amp_skipped_steps', skipped)
            scale = (f'lowered the loss scale {self.scale_before:g} -> '
                     f'{scale_after:g}' if dropped else
                     f'kept the loss scale at {scale_after:g}')
            norm = '' if grad_norm is None else f', grad norm {grad_norm:.4g}'
            runner.logger.warning(
                f'AMP: non-finite gradients at iteration {iteration} (loss '
                f'{self._value(loss)}{norm}); the loss scaler skipped this '
                f'step and {scale}. Skipped steps so far: {skipped}.')
        self.non_finite_in_a_row = self.non_finite_in_a_row + 1 \
            if loss_bad else 0
        if self.non_finite_in_a_row >= self.amp_patience:
            raise RuntimeError(
                self._step_message(runner, loss, loss_bad, grad_norm) +
                f' Under AMP the loss was non-finite {self.amp_patience} '
                'iterations in a row, which loss scaling cannot fix.')

    def _pass_weights(self, runner, weights_bad: bool, exploded: bool,
                      max_abs: float, steps: Optional[int]) -> None:
        """Raise unless the weights may be saved; else note the check."""
        if weights_bad or exploded:
            raise RuntimeError(self._weights_message(runner, steps))
        self.checked_steps = steps
        self.save_pending = True
        runner.logger.info(
            f'NonFiniteGuardHook: weights after iteration {steps} checked '
            f'before saving: finite, max |w| {max_abs:.3g} <= '
            f'max_abs_weight {self.max_abs_weight:g}.')

    def _note_checked_save(self, runner) -> None:
        """The checkpoint saved after the last passed check is the one the
        message hub names now (CheckpointHook sets it on every rank)."""
        if self.save_pending:
            self.last_finite = runner.message_hub.get_info(
                'last_ckpt', self.last_finite)
            self.save_pending = False

    # ------------------------------------------------------------ messages
    @staticmethod
    def _value(tensor: Optional[torch.Tensor]) -> str:
        return 'n/a' if tensor is None else f'{tensor.detach().item():.4g}'

    def _restart(self) -> str:
        last = self.last_finite
        if not last:
            return ('No checkpoint with finite weights was written yet: '
                    'rerun from scratch after the fix.')
        if '://' not in last and not osp.isfile(last):
            return (f'The last checkpoint with finite weights, {last}, no '
                    'longer exists (deleted since, e.g. by max_keep_ckpts): '
                    'rerun from scratch, or resume from an older copy.')
        return (f'The last checkpoint with finite weights is {last}: after '
                f'the fix, rerun with `--resume {last}`.')

    def _step_message(self, runner, loss: Optional[torch.Tensor],
                      loss_bad: bool, grad_norm: Optional[float]) -> str:
        local = loss is not None and not bool(torch.isfinite(loss).all())
        found = []
        if loss_bad:
            found.append(f'loss ({self._value(loss)})' if local else
                         'loss (on another rank)')
        if grad_norm is not None and not math.isfinite(grad_norm):
            found.append(f'gradient norm ({grad_norm})')
        finite_loss = '' if loss_bad else \
            f', with a finite loss ({self._value(loss)})'
        return (
            f'Non-finite {" and ".join(found)} at iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}){finite_loss}: training stopped so '
            f'that no NaN weights are saved. {self._restart()} {CAUSES}')

    def _weights_message(self, runner, steps: Optional[int]) -> str:
        model = self._model(runner)
        problems = []
        non_finite = describe_non_finite(model.state_dict())
        if non_finite:
            problems.append(f'NaN/Inf in {len(non_finite)} tensor(s): '
                            f'{list_head(non_finite)}')
        exploded = []
        for name, param in model.named_parameters():
            if param.requires_grad and param.is_floating_point() and \
                    param.numel():
                largest = float(abs_max(param))
                if math.isfinite(largest) and largest > self.max_abs_weight:
                    exploded.append(f'{name} (max |w| {largest:.3g})')
        if exploded:
            problems.append(
                f'{len(exploded)} trained tensor(s) beyond max_abs_weight='
                f'{self.max_abs_weight:g}: {list_head(exploded)}')
        return (
            f'Refusing to save the checkpoint after iteration {steps}: '
            f'{"; ".join(problems) or "broken weights on another rank"}. '
            'Training stopped so that no broken checkpoint is written. '
            f'{self._restart()} A NaN gradient or an lr spike was stepped '
            'into the weights; with optim_wrapper.clip_grad set, a NaN '
            'gradient stops the run at the step itself. ' + CAUSES)
