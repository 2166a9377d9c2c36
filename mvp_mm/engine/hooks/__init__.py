from .alignment_hook import MVPAlignmentHook
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .iteration_seed_hook import IterationSeedHook
from .non_finite_guard_hook import NonFiniteGuardHook
from .optimizer_step_param_scheduler_hook import \
    OptimizerStepParamSchedulerHook
from .strict_checkpoint_load_hook import StrictCheckpointLoadHook

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'MVPAlignmentHook',
    'NonFiniteGuardHook', 'OptimizerStepParamSchedulerHook',
    'StrictCheckpointLoadHook'
]
