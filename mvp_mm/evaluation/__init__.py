from .alignment_metric import MVPAlignmentMetric

__all__ = ['MVPAlignmentMetric']
