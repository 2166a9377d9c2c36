"""A resumed model gets every weight from the checkpoint, or an error."""
import re

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class StrictCheckpointLoadHook(Hook):
    """Refuse a ``--resume`` / ``load_from`` checkpoint that does not match.

    Part of the training tooling of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. mmengine loads runner
    checkpoints with ``strict=False``: resuming from the wrong file (another
    model size, a fine-tuned classifier) logs a warning and trains on with
    the unmatched weights left at random init. This hook compares the
    checkpoint's ``state_dict`` with the model's before any weight is copied
    (``after_load_checkpoint``) and raises ``ValueError`` listing the
    missing, unexpected and mis-shaped keys. It does not affect
    ``init_cfg=dict(type='Pretrained')``, which loads a sub-network on
    purpose.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Compare the checkpoint's keys and shapes with the model's."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        source = checkpoint.get('state_dict', checkpoint)
        found = {
            re.sub(r'^module\.', '', k): tuple(getattr(v, 'shape', ()))
            for k, v in source.items()
        }
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        mis_shaped = [
            f'{k}: checkpoint {found[k]} vs model {expected[k]}'
            for k in sorted(set(expected) & set(found))
            if found[k] != expected[k]
        ]
        if not (missing or unexpected or mis_shaped):
            return

        def head(items):
            return ', '.join(items[:5]) + (
                f' (+{len(items) - 5} more)' if len(items) > 5 else '')

        problems = [
            f'{name} ({len(items)}): {head(items)}'
            for name, items in (('missing', missing), ('unexpected',
                                                       unexpected),
                                ('shape mismatch', mis_shaped)) if items
        ]
        raise ValueError(
            'The checkpoint does not match the model, so resuming would '
            'leave weights at random init. ' + '; '.join(problems) +
            '. Resume with the config that wrote this checkpoint, or '
            'pick the right file: `--resume work_dirs/<run>/iter_N.pth`. To '
            'start a new run from pretrained weights, use the model\'s '
            "init_cfg=dict(type='Pretrained', checkpoint=...) instead.")
