from .alignment_metric import MVPAlignmentMetric
from .weighted_knn import weighted_knn_accuracy, weighted_knn_correct

__all__ = [
    'MVPAlignmentMetric', 'weighted_knn_accuracy', 'weighted_knn_correct'
]
