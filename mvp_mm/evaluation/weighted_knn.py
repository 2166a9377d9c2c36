"""DINO's weighted k-nearest-neighbour classifier on frozen features.

The k-NN accuracy self-supervised codebases judge a run by (DINO, iBOT,
MAE's k-NN tables): every query image votes with its ``k`` most similar
memory images, each vote weighted by ``exp(similarity / temperature)``.
After ``knn_classifier`` of
https://github.com/facebookresearch/dino/blob/main/eval_knn.py (k=20,
T=0.07, cosine similarity of L2-normalised features), vectorised with a
``scatter_add_`` of the weights instead of a one-hot product, and with a
deterministic order among classes of equal score (the lower class index
first; DINO's unstable ``sort`` leaves it open).
"""
from typing import Dict, Optional, Sequence

import torch

#: The tolerance on the norm of a row that must be L2-normalised.
_UNIT_NORM_TOLERANCE = 1e-3


def _check(memory_features: torch.Tensor, memory_labels: torch.Tensor,
           query_features: torch.Tensor, query_labels: torch.Tensor,
           k: int, temperature: float) -> None:
    if memory_features.dim() != 2 or query_features.dim() != 2 or \
            memory_features.size(1) != query_features.size(1):
        raise ValueError(
            'weighted k-NN needs [N, C] memory and [Q, C] query features of '
            f'the same width, got {tuple(memory_features.shape)} and '
            f'{tuple(query_features.shape)}.')
    if memory_labels.shape != memory_features.shape[:1] or \
            query_labels.shape != query_features.shape[:1]:
        raise ValueError(
            f'{memory_features.size(0)} memory / {query_features.size(0)} '
            f'query features but {memory_labels.numel()} / '
            f'{query_labels.numel()} labels: one label per image.')
    if not 1 <= k <= memory_features.size(0):
        raise ValueError(
            f'k={k} neighbours from a memory set of '
            f'{memory_features.size(0)} images: k must be in [1, memory '
            'size]; give a larger memory set or a smaller k.')
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}.')
    for name, features in (('memory', memory_features),
                           ('query', query_features)):
        norms = torch.linalg.vector_norm(features.float(), dim=1)
        if features.numel() and \
                (norms - 1).abs().max() > _UNIT_NORM_TOLERANCE:
            raise ValueError(
                f'The {name} features are not L2-normalised (row norms '
                f'{norms.min():.4g}..{norms.max():.4g}): cosine similarity '
                'is their dot product only for unit rows. Pass '
                'torch.nn.functional.normalize(features, dim=1).')


@torch.no_grad()
def weighted_knn_correct(memory_features: torch.Tensor,
                         memory_labels: torch.Tensor,
                         query_features: torch.Tensor,
                         query_labels: torch.Tensor,
                         k: int = 20,
                         temperature: float = 0.07,
                         num_classes: Optional[int] = None,
                         topk: Sequence[int] = (1, 5),
                         chunk_size: int = 128) -> torch.Tensor:
    """How many queries DINO's weighted k-NN classifies correctly.

    For each query: the cosine similarity to every memory image, its ``k``
    nearest neighbours, per class the sum of ``exp(similarity /
    temperature)`` over the neighbours of that class; classes ranked by that
    score (ties: lower class index first). A query counts as correct at
    ``n`` if its label is among the first ``min(n, k)`` classes (DINO: "top5
    does not make sense if k < 5"). The part of :func:`weighted_knn_accuracy`
    that adds up across ranks, each scoring its own queries.

    Args:
        memory_features (torch.Tensor): ``[N, C]``, rows L2-normalised.
        memory_labels (torch.Tensor): ``[N]`` class indices.
        query_features (torch.Tensor): ``[Q, C]``, rows L2-normalised, on
            the device of ``memory_features``.
        query_labels (torch.Tensor): ``[Q]`` class indices.
        k (int): Neighbours per query. Defaults to 20.
        temperature (float): Of the vote weights. Defaults to 0.07.
        num_classes (int, optional): Defaults to the largest label + 1.
        topk (Sequence[int]): The ``n`` of each count. Defaults to
            ``(1, 5)``.
        chunk_size (int): Queries per similarity matmul (memory:
            ``chunk_size x N`` floats). Defaults to 128.

    Returns:
        torch.Tensor: ``[len(topk)]`` int64 counts of correct queries.

    Raises:
        ValueError: Shapes that do not match, ``k`` outside ``[1, N]``,
            ``temperature <= 0``, or rows that are not unit vectors.
    """
    _check(memory_features, memory_labels, query_features, query_labels, k,
           temperature)
    memory_labels = memory_labels.to(memory_features.device).long()
    query_labels = query_labels.to(memory_features.device).long()
    if num_classes is None:
        num_classes = int(torch.cat((memory_labels, query_labels)).max()) + 1
    ranks = [min(n, k) for n in topk]
    correct = torch.zeros(len(topk), dtype=torch.long,
                          device=memory_features.device)
    for start in range(0, query_features.size(0), chunk_size):
        queries = query_features[start:start + chunk_size]
        labels = query_labels[start:start + chunk_size]
        similarity = queries @ memory_features.T  # [B, N]
        nearest, neighbours = similarity.topk(k, dim=1)  # [B, k]
        votes = torch.zeros(queries.size(0), num_classes,
                            dtype=nearest.dtype, device=nearest.device)
        votes.scatter_add_(1, memory_labels[neighbours],
                           (nearest / temperature).exp())  # [B, classes]
        order = votes.sort(dim=1, descending=True, stable=True).indices
        hits = order[:, :max(ranks)] == labels[:, None]  # [B, max rank]
        for i, rank in enumerate(ranks):
            correct[i] += hits[:, :rank].any(dim=1).sum()
    return correct


def weighted_knn_accuracy(memory_features: torch.Tensor,
                          memory_labels: torch.Tensor,
                          query_features: torch.Tensor,
                          query_labels: torch.Tensor,
                          k: int = 20,
                          temperature: float = 0.07,
                          num_classes: Optional[int] = None,
                          topk: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """DINO's weighted k-NN top-n accuracy, in percent.

    Args:
        memory_features, memory_labels, query_features, query_labels, k,
        temperature, num_classes, topk: As for :func:`weighted_knn_correct`.

    Returns:
        Dict[str, float]: ``{'top1': ..., 'top5': ...}`` (one per ``topk``),
        percent of the ``Q`` queries.
    """
    correct = weighted_knn_correct(memory_features, memory_labels,
                                   query_features, query_labels, k,
                                   temperature, num_classes, topk)
    total = max(query_features.size(0), 1)
    return {f'top{n}': 100.0 * int(c) / total
            for n, c in zip(topk, correct)}
