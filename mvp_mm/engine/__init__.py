from .hooks import (AtomicCheckpointHook, IterationSeedHook,
                    NonFiniteLossHook, StrictCheckpointLoadHook)
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)

__all__ = [
    'AtomicCheckpointHook', 'IterationSeedHook', 'NonFiniteLossHook',
    'StrictCheckpointLoadHook', 'check_checkpoint_file',
    'find_resume_checkpoint', 'resolve_resume'
]
