"""Student-teacher alignment of an MVP checkpoint on held-out images."""
from typing import Dict, List, Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmpretrain.registry import METRICS


@METRICS.register_module()
class MVPAlignmentMetric(BaseMetric):
    """Mean cosine between MVP's predictions and its teacher's features.

    `MVP <https://arxiv.org/abs/2203.05175>`_ is trained to maximise this
    cosine (Eq. 9), so on held-out images it is the direct measure of a
    pre-training checkpoint: ``cls`` (global), ``masked`` (patches the
    student did not see) and ``visible`` patches, each averaged over images.
    Reads the ``alignment`` field that ``MVP.predict`` attaches (it has no
    ``masked`` when the pipeline masks nothing, as for Feature Distillation).

    Args:
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str): Metric name prefix. Defaults to ``'alignment'``.
    """
    default_prefix = 'alignment'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(
                {k: float(v) for k, v in sample['alignment'].items()})

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        return {
            key: torch.tensor([r[key] for r in results]).mean().item()
            for key in ('cls', 'masked', 'visible') if key in results[0]
        }
