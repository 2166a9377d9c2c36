from .effective_batch_runner import EffectiveBatchRunner

__all__ = ['EffectiveBatchRunner']
