from .alignment_hook import MVPAlignmentHook
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .iteration_seed_hook import IterationSeedHook
from .knn_monitor_hook import KNNMonitorHook
from .non_finite_guard_hook import NonFiniteGuardHook
from .optimizer_step_param_scheduler_hook import \
    OptimizerStepParamSchedulerHook
from .save_on_signal_hook import (STOPPED_BY_SIGNAL_EXIT_CODE,
                                  SaveOnSignalHook, StoppedBySignal)
from .strict_checkpoint_load_hook import StrictCheckpointLoadHook
from .timed_checkpoint_hook import TimedCheckpointHook
from .triggered_checkpoint_hook import TriggeredCheckpointHook
from .work_dir_lock_hook import WorkDirLockHook

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'KNNMonitorHook',
    'MVPAlignmentHook', 'NonFiniteGuardHook',
    'OptimizerStepParamSchedulerHook', 'STOPPED_BY_SIGNAL_EXIT_CODE',
    'SaveOnSignalHook', 'StoppedBySignal', 'StrictCheckpointLoadHook',
    'TimedCheckpointHook', 'TriggeredCheckpointHook', 'WorkDirLockHook'
]
