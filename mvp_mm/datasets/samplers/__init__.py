from .resumable_sampler import ResumableSampler
from .seeded_sampler import SeededIndex, SeededSampler

__all__ = ['ResumableSampler', 'SeededIndex', 'SeededSampler']
