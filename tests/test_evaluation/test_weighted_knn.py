"""DINO's weighted k-NN against a plain reference written here."""
import math

import pytest
import torch
import torch.nn.functional as F

from mvp_mm.evaluation import weighted_knn_accuracy, weighted_knn_correct


def reference_knn(memory, memory_labels, queries, query_labels, k, t,
                  num_classes):
    """DINO's eval_knn.py knn_classifier, one query at a time in Python
    floats: similarities sorted (ties: lower memory index), votes of
    exp(sim / t) per class, classes ranked (ties: lower class index)."""
    memory, queries = memory.tolist(), queries.tolist()
    top1 = top5 = 0
    for query, label in zip(queries, query_labels.tolist()):
        similarities = [(sum(a * b for a, b in zip(query, row)), index)
                        for index, row in enumerate(memory)]
        similarities.sort(key=lambda pair: -pair[0])
        votes = [0.0] * num_classes
        for similarity, index in similarities[:k]:
            votes[int(memory_labels[index])] += math.exp(similarity / t)
        ranking = sorted(range(num_classes), key=lambda c: -votes[c])
        top1 += ranking[0] == label
        top5 += label in ranking[:min(5, k)]
    return 100.0 * top1 / len(queries), 100.0 * top5 / len(queries)


def clustered(num, num_classes, dims, seed, spread=1.2):
    """Unit features around one random centre per class: k-NN gets some
    but not all queries right."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dims, generator=torch.Generator(
    ).manual_seed(0), dtype=torch.float64)
    labels = torch.randint(num_classes, (num, ), generator=generator)
    features = centres[labels] + spread * torch.randn(
        num, dims, generator=generator, dtype=torch.float64)
    return F.normalize(features, dim=1), labels


@pytest.mark.parametrize('k', [20, 3])
def test_matches_the_reference_on_fixed_features(k):
    memory, memory_labels = clustered(120, 8, 6, seed=1)
    queries, query_labels = clustered(60, 8, 6, seed=2)
    expected = reference_knn(memory, memory_labels, queries, query_labels,
                             k, 0.07, 8)
    scores = weighted_knn_accuracy(memory, memory_labels, queries,
                                   query_labels, k=k)
    assert (scores['top1'], scores['top5']) == pytest.approx(expected)
    assert 0 < scores['top1'] < scores['top5'] < 100  # informative data
    # float32, and one query per chunk: the same counts
    counts = weighted_knn_correct(memory.float(), memory_labels,
                                  queries.float(), query_labels, k=k,
                                  chunk_size=1)
    assert counts.tolist() == [round(e * 60 / 100) for e in expected]


def test_votes_are_weighted_by_exp_similarity_over_temperature():
    # Neighbours of the query: class 0 at cosine 0.9, class 1 twice at 0.8.
    # exp(0.9 / 0.07) > 2 exp(0.8 / 0.07): class 0 wins, not the majority;
    # at T = 1 the majority wins.
    def unit(cosine):
        return [cosine, math.sqrt(1 - cosine**2)]

    memory = torch.tensor([unit(0.9), unit(0.8), unit(0.8), unit(-1.0)])
    memory_labels = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([[1.0, 0.0]])
    for temperature, winner in ((0.07, 0), (1.0, 1)):
        for label in (0, 1):
            top1 = weighted_knn_accuracy(
                memory, memory_labels, query, torch.tensor([label]), k=3,
                temperature=temperature)['top1']
            assert top1 == (100.0 if label == winner else 0.0)
    # top-5 with k < 5 counts the first k classes only (DINO); class 2 is
    # no neighbour of the query at k = 2.
    scores = weighted_knn_accuracy(memory, memory_labels, query,
                                   torch.tensor([2]), k=2)
    assert scores == {'top1': 0.0, 'top5': 0.0}


def test_bad_input_is_an_error_naming_the_fix():
    memory, labels = clustered(10, 2, 4, seed=1)
    with pytest.raises(ValueError, match='not L2-normalised'):
        weighted_knn_accuracy(memory * 2, labels, memory, labels, k=3)
    with pytest.raises(ValueError, match='k=20 neighbours from a memory set '
                       'of 10'):
        weighted_knn_accuracy(memory, labels, memory, labels)
    with pytest.raises(ValueError, match='one label per image'):
        weighted_knn_accuracy(memory, labels[:5], memory, labels, k=3)
