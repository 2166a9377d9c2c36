from .hooks import (STOPPED_BY_SIGNAL_EXIT_CODE, AtomicCheckpointHook,
                    IterationSeedHook, MVPAlignmentHook, NonFiniteGuardHook,
                    SaveOnSignalHook, StoppedBySignal,
                    StrictCheckpointLoadHook, TimedCheckpointHook,
                    TriggeredCheckpointHook, WorkDirLockHook)
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)
from .work_dir_lock import (WorkDirLock, WorkDirLockedError, launch_rank,
                            lock_work_dir)

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'MVPAlignmentHook',
    'NonFiniteGuardHook', 'STOPPED_BY_SIGNAL_EXIT_CODE', 'SaveOnSignalHook',
    'StoppedBySignal', 'StrictCheckpointLoadHook', 'TimedCheckpointHook',
    'TriggeredCheckpointHook', 'check_checkpoint_file',
    'find_resume_checkpoint', 'resolve_resume', 'WorkDirLockHook',
    'WorkDirLock', 'WorkDirLockedError', 'launch_rank', 'lock_work_dir'
]
