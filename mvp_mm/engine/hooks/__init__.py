from .alignment_hook import MVPAlignmentHook
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .iteration_seed_hook import IterationSeedHook
from .knn_monitor_hook import KNNMonitorHook
from .non_finite_guard_hook import NonFiniteGuardHook
from .optimizer_step_param_scheduler_hook import \
    OptimizerStepParamSchedulerHook
from .strict_checkpoint_load_hook import StrictCheckpointLoadHook
from .work_dir_lock_hook import WorkDirLockHook

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'KNNMonitorHook',
    'MVPAlignmentHook', 'NonFiniteGuardHook',
    'OptimizerStepParamSchedulerHook', 'StrictCheckpointLoadHook',
    'WorkDirLockHook'
]
