from .hooks import (AtomicCheckpointHook, IterationSeedHook, KNNMonitorHook,
                    MVPAlignmentHook, NonFiniteGuardHook,
                    OptimizerStepParamSchedulerHook, StrictCheckpointLoadHook,
                    WorkDirLockHook)
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
    'ResumableEpochBasedTrainLoop', 'StrictCheckpointLoadHook',
    'check_checkpoint_file', 'find_resume_checkpoint', 'resolve_resume',
    'WorkDirLockHook', 'WorkDirLock', 'WorkDirLockedError', 'launch_rank',
    'lock_work_dir'
]
