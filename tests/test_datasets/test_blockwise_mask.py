"""BlockwiseMaskGenerator: exact count, blocks, reproducible, registry-built,
and BEiT's distribution of masked rows and columns."""
import math
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


def _beit_mask(height=14, width=14, num_masking_patches=75,
               min_num_patches=16, min_aspect=0.3) -> np.ndarray:
    """BEiT's ``MaskingGenerator.__call__``, written out as the reference
    (https://github.com/microsoft/unilm/blob/master/beit/masking_generator.py),
    including its stop after 10 failed attempts."""
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    mask = np.zeros((height, width), dtype=int)
    count = 0
    while count < num_masking_patches:
        max_mask_patches = num_masking_patches - count
        delta = 0
        for _ in range(10):
            area = random.uniform(min_num_patches, max_mask_patches)
            aspect = math.exp(random.uniform(*log_aspect))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                top = random.randint(0, height - h)
                left = random.randint(0, width - w)
                num_masked = mask[top:top + h, left:left + w].sum()
                if 0 < h * w - num_masked <= max_mask_patches:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i, j] == 0:
                                mask[i, j] = 1
                                delta += 1
            if delta > 0:
                break
        if delta == 0:
            break
        count += delta
    return mask


def test_rows_and_columns_masked_as_often_as_in_beit():
    """Every row and column is masked as often as with BEiT's generator,
    the last ones included (an origin drawn from [0, H - h) never reaches
    them: 27 of 196 patches never masked)."""
    n = 4000  # per-row frequency standard error ~0.008
    random.seed(0)
    beit = np.stack([_beit_mask() for _ in range(n)])
    gen = _build()
    random.seed(1)
    ours = np.stack([gen({})['mask'] for _ in range(n)])
    assert (ours.sum(axis=(1, 2)) == 75).all()
    for axis in ((0, 2), (0, 1)):  # per row, per column
        ours_freq, beit_freq = ours.mean(axis=axis), beit.mean(axis=axis)
        # BEiT's edge rows/columns are masked in ~13% of masks
        np.testing.assert_allclose(ours_freq, beit_freq, atol=0.035)
        assert abs(ours_freq[-1] - ours_freq[0]) < 0.035
