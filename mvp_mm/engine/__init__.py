from .hooks import (AtomicCheckpointHook, IterationSeedHook,
                    MVPAlignmentHook, NonFiniteGuardHook,
                    OptimizerStepParamSchedulerHook, StrictCheckpointLoadHook)
from .loops import ResumableEpochBasedTrainLoop
from .resume import (check_checkpoint_file, find_resume_checkpoint,
                     resolve_resume)
from .runners import EffectiveBatchRunner

__all__ = [
    'AtomicCheckpointHook', 'EffectiveBatchRunner', 'IterationSeedHook',
    'MVPAlignmentHook', 'NonFiniteGuardHook',
    'OptimizerStepParamSchedulerHook', 'ResumableEpochBasedTrainLoop',
    'StrictCheckpointLoadHook', 'check_checkpoint_file',
    'find_resume_checkpoint', 'resolve_resume'
]
