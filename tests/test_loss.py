"""Eq. 9 on hand-made tensors, for both patch options."""
import pytest
import torch

from mvp_mm.models import MVPLoss


def _unit(*vectors):
    return torch.tensor(vectors, dtype=torch.float32)


def test_all_patches_is_eq9():
    # One image, CLS + M=3 patches, 2-D features with known cosines.
    pred = _unit([1, 0], [1, 0], [0, 1], [1, 1]).unsqueeze(0)
    target = _unit([1, 0], [0, 1], [0, 2], [-1, -1]).unsqueeze(0)
    # cosines: 1, 0, 1, -1 -> -(1 + 0 + 1 - 1) / (M + 1) = -0.25
    mask = torch.tensor([[1, 0, 1]])
    assert MVPLoss('all')(pred, target, mask).item() == pytest.approx(-0.25)


def test_masked_patches_counts_cls_and_masked_only():
    pred = _unit([1, 0], [1, 0], [0, 1], [1, 1]).unsqueeze(0)
    target = _unit([1, 0], [0, 1], [0, 2], [-1, -1]).unsqueeze(0)
    mask = torch.tensor([[1, 0, 1]])  # patches 1 and 3 masked
    # CLS 1, masked patches 0 and -1 -> -(1 + 0 - 1) / 3 = 0
    assert MVPLoss("masked")(pred, target, mask).item() == pytest.approx(
        0.0, abs=1e-6)
    mask = torch.tensor([[0, 1, 0]])  # only patch 2 masked: -(1 + 1) / 2
    assert MVPLoss('masked')(pred, target, mask).item() == pytest.approx(-1.0)


def test_batch_mean_and_scale_invariance():
    torch.manual_seed(0)
    pred, target = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    mask = torch.randint(0, 2, (3, 4))
    expected = -torch.nn.functional.cosine_similarity(
        pred, target, dim=-1).mean()
    loss = MVPLoss()(pred * 7, target * 0.1, mask)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_computed_in_float32_from_half_inputs():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    full = MVPLoss()(pred, target)
    half = MVPLoss()(pred.bfloat16(), target.bfloat16())
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), abs=2e-2)


def test_bad_option_and_missing_mask_are_clear_errors():
    with pytest.raises(ValueError, match="'all'"):
        MVPLoss('visible')
    with pytest.raises(ValueError, match='needs the mask'):
        MVPLoss('masked')(torch.randn(1, 2, 4), torch.randn(1, 2, 4))
