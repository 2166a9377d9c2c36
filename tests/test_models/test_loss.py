"""Eq. 9 and the CLIP-guided variants' losses on hand-made tensors: every
expected value is worked out by hand in the comments, not by the code."""
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
    with pytest.raises(ValueError, match='scores no token'):
        MVPLoss('none', cls=False)
    with pytest.raises(ValueError, match="criterion='l1'"):
        MVPLoss(criterion='l1')
    with pytest.raises(ValueError, match='no meaning with'):
        MVPLoss(beta=2.0)  # a threshold for the default cosine
    with pytest.raises(ValueError, match='must be > 0'):
        MVPLoss(criterion='smooth_l1', beta=0)


def test_feature_distillation_smooth_l1_beta_2_on_every_token():
    # FD (official code): SmoothL1Loss(beta=2.0) on CLS + all patches, mean
    # over every element. Per element: 0.5 d^2 / 2 if |d| < 2 else |d| - 1.
    pred = torch.tensor([[[0., 0.], [1., 3.], [0.5, -1.]]])
    target = torch.tensor([[[1., 0.], [0., 0.], [0., 1.]]])
    # d = CLS (-1, 0): 0.25, 0 -> 0.125; patch 1 (1, 3): 0.25, 2 -> 1.125;
    # patch 2 (0.5, -2): 0.0625, 1 -> 0.53125; mean of the three: 0.59375
    loss = MVPLoss(criterion='smooth_l1', beta=2.0)
    assert loss(pred, target).item() == pytest.approx(0.59375)
    mask = torch.tensor([[1, 0]])  # ignored when every patch is scored
    assert loss(pred, target, mask).item() == pytest.approx(0.59375)


def test_maskdistill_smooth_l1_on_masked_patches_only():
    # MaskDistill: masked positions only (no CLS), smooth-L1 with PyTorch's
    # beta 1: 0.5 d^2 if |d| < 1 else |d| - 0.5. One channel per token.
    pred = torch.tensor([[[0.], [0.5], [3.], [-1.]],
                         [[0.], [2.], [0.], [0.]]])
    target = torch.tensor([[[9.], [0.], [0.], [0.]],
                           [[0.], [0.], [0.], [0.]]])
    mask = torch.tensor([[1, 0, 1], [1, 0, 0]])
    # image 1: masked patches 1 and 3: d = 0.5 -> 0.125, d = -1 -> 0.5;
    # mean 0.3125 (the CLS error of 9 and the visible patch's 3 don't count)
    # image 2: masked patch 1: d = 2 -> 1.5. Batch: (0.3125 + 1.5) / 2
    loss = MVPLoss('masked', cls=False, criterion='smooth_l1')
    assert loss(pred, target, mask).item() == pytest.approx(0.90625)
    # an image with nothing masked has nothing to score: it is left out of
    # the batch mean instead of counting as a zero loss
    mask = torch.tensor([[1, 0, 1], [0, 0, 0]])
    assert loss(pred, target, mask).item() == pytest.approx(0.3125)


def test_mse_and_cls_only():
    pred = torch.tensor([[[1., 2.], [5., 5.]]])
    target = torch.zeros(1, 2, 2)
    # CLS only: (1 + 4) / 2 = 2.5; the patch's error of 25 does not count
    assert MVPLoss('none', criterion='mse')(pred, target).item() == \
        pytest.approx(2.5)
    # CLS + the patch: (2.5 + 25) / 2
    assert MVPLoss(criterion='mse')(pred, target).item() == \
        pytest.approx(13.75)
    # cosine on CLS only: pred (1, 2) vs target (2, 4): cosine 1 -> -1
    target = torch.tensor([[[2., 4.], [-5., -5.]]])
    assert MVPLoss('none')(pred, target).item() == pytest.approx(-1.0)


def test_variant_losses_computed_in_float32_from_half_inputs():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 1]])
    for loss in (MVPLoss(criterion='smooth_l1', beta=2.0),
                 MVPLoss('masked', cls=False, criterion='smooth_l1'),
                 MVPLoss('masked', criterion='mse')):
        half = loss(pred.bfloat16(), target.bfloat16(), mask)
        assert half.dtype == torch.float32
        assert half.item() == pytest.approx(
            loss(pred, target, mask).item(), rel=2e-2)
