"""BlockwiseMaskGenerator: exact count, blocks, reproducible, registry-built."""
import random

import numpy as np
import pytest
from scipy import ndimage

from mmpretrain.registry import TRANSFORMS


def _build(**kwargs):
    return TRANSFORMS.build(dict(type='BlockwiseMaskGenerator', **kwargs))


@pytest.mark.parametrize('count', [1, 16, 75, 98, 150])
def test_exact_count(count):
    gen = _build(input_size=14, num_masking_patches=count,
                 min_num_patches=min(16, count))
    random.seed(0)
    for _ in range(50):
        mask = gen({})['mask']
        assert mask.shape == (14, 14) and mask.dtype == bool
        assert mask.sum() == count


def test_default_is_mvp_setting():
    mask = _build()({})['mask']
    assert mask.shape == (14, 14) and mask.sum() == 75


def test_masks_come_in_blocks():
    """Blockwise, not random: few connected regions, each at least 2 wide."""
    gen = _build()
    random.seed(1)
    regions = []
    for _ in range(200):
        mask = gen({})['mask']
        _, n = ndimage.label(mask)
        regions.append(n)
        # a random 75-of-196 mask has ~30 components; blocks give a handful
    assert np.mean(regions) < 6


def test_reproducible_per_seed_and_different_across_seeds():
    gen = _build()
    random.seed(123)
    first = [gen({})['mask'] for _ in range(5)]
    random.seed(123)
    again = [gen({})['mask'] for _ in range(5)]
    random.seed(124)
    other = [gen({})['mask'] for _ in range(5)]
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, other))


def test_rectangular_grid_and_options():
    gen = _build(input_size=(8, 12), num_masking_patches=30,
                 min_num_patches=4, max_num_patches=10, min_aspect=0.5)
    mask = gen({'img': None})['mask']
    assert mask.shape == (8, 12) and mask.sum() == 30


def test_too_many_patches_is_a_clear_error():
    with pytest.raises(ValueError, match='num_masking_patches=200'):
        _build(input_size=14, num_masking_patches=200)


def test_impossible_blocks_raise_instead_of_hanging():
    # BEiT blocks are strictly narrower than the grid: none fits a 1x1 grid.
    gen = _build(input_size=1, num_masking_patches=1, min_num_patches=1)
    with pytest.raises(RuntimeError, match='min_num_patches'):
        gen({})
