from .hooks import (AtomicCheckpointHook, IterationSeedHook, KNNMonitorHook,
                    MVPAlignmentHook, NonFiniteGuardHook,
                    StrictCheckpointLoadHook)
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'KNNMonitorHook',
    'MVPAlignmentHook', 'NonFiniteGuardHook', 'StrictCheckpointLoadHook',
    'check_checkpoint_file', 'find_resume_checkpoint', 'resolve_resume'
]
