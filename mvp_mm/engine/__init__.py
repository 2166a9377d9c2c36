from .hooks import (STOPPED_BY_SIGNAL_EXIT_CODE, AtomicCheckpointHook,
                    IterationSeedHook, KNNMonitorHook, MVPAlignmentHook,
                    NonFiniteGuardHook, OptimizerStepParamSchedulerHook,
                    SaveOnSignalHook, StoppedBySignal,
                    StrictCheckpointLoadHook, TimedCheckpointHook,
                    TriggeredCheckpointHook, WorkDirLockHook)
from .loops import ResumableEpochBasedTrainLoop
from .quiet_console_runner import QuietConsoleRunner
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)
from .runners import EffectiveBatchRunner
from .work_dir_lock import (WorkDirLock, WorkDirLockedError, launch_rank,
                            lock_work_dir)

__all__ = [
    'AtomicCheckpointHook', 'EffectiveBatchRunner', 'IterationSeedHook',
    'KNNMonitorHook', 'MVPAlignmentHook', 'NonFiniteGuardHook',
    'OptimizerStepParamSchedulerHook', 'QuietConsoleRunner',
    'ResumableEpochBasedTrainLoop', 'STOPPED_BY_SIGNAL_EXIT_CODE',
    'SaveOnSignalHook', 'StoppedBySignal', 'StrictCheckpointLoadHook',
    'TimedCheckpointHook', 'TriggeredCheckpointHook', 'check_checkpoint_file',
    'find_resume_checkpoint', 'resolve_resume', 'WorkDirLockHook',
    'WorkDirLock', 'WorkDirLockedError', 'launch_rank', 'lock_work_dir'
]
