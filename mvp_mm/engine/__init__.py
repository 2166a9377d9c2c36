from .hooks import (AtomicCheckpointHook, IterationSeedHook,
                    MVPAlignmentHook, NonFiniteGuardHook,
                    StrictCheckpointLoadHook)
from .loops import ResumableEpochBasedTrainLoop
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'MVPAlignmentHook',
    'NonFiniteGuardHook', 'ResumableEpochBasedTrainLoop',
    'StrictCheckpointLoadHook', 'check_checkpoint_file',
    'find_resume_checkpoint', 'resolve_resume'
]
