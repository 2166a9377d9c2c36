from .alignment_hook import MVPAlignmentHook
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .iteration_seed_hook import IterationSeedHook
from .non_finite_loss_hook import NonFiniteLossHook
from .strict_checkpoint_load_hook import StrictCheckpointLoadHook

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'MVPAlignmentHook',
    'NonFiniteLossHook', 'StrictCheckpointLoadHook'
]
