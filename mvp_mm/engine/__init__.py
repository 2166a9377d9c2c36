from .hooks import (AtomicCheckpointHook, IterationSeedHook, KNNMonitorHook,
                    MVPAlignmentHook, NonFiniteGuardHook,
                    StrictCheckpointLoadHook, WorkDirLockHook)
from .quiet_console_runner import QuietConsoleRunner
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)
from .work_dir_lock import (WorkDirLock, WorkDirLockedError, launch_rank,
                            lock_work_dir)

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'KNNMonitorHook',
    'MVPAlignmentHook', 'NonFiniteGuardHook', 'QuietConsoleRunner',
    'StrictCheckpointLoadHook', 'check_checkpoint_file',
    'find_resume_checkpoint', 'resolve_resume', 'WorkDirLockHook',
    'WorkDirLock', 'WorkDirLockedError', 'launch_rank', 'lock_work_dir'
]
