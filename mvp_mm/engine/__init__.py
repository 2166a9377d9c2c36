from .hooks import (STOPPED_BY_SIGNAL_EXIT_CODE, AtomicCheckpointHook,
                    IterationSeedHook, MVPAlignmentHook, NonFiniteGuardHook,
                    SaveOnSignalHook, StoppedBySignal,
                    StrictCheckpointLoadHook, TimedCheckpointHook,
                    TriggeredCheckpointHook)
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'MVPAlignmentHook',
    'NonFiniteGuardHook', 'STOPPED_BY_SIGNAL_EXIT_CODE', 'SaveOnSignalHook',
    'StoppedBySignal', 'StrictCheckpointLoadHook', 'TimedCheckpointHook',
    'TriggeredCheckpointHook', 'check_checkpoint_file',
    'find_resume_checkpoint', 'resolve_resume'
]
