from .hooks import (AtomicCheckpointHook, IterationSeedHook,
                    MVPAlignmentHook, NonFiniteGuardHook,
                    StrictCheckpointLoadHook)
from .quiet_console_runner import QuietConsoleRunner
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'MVPAlignmentHook',
    'NonFiniteGuardHook', 'QuietConsoleRunner', 'StrictCheckpointLoadHook',
    'check_checkpoint_file', 'find_resume_checkpoint', 'resolve_resume'
]
