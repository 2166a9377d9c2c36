"""The mmcv.ops fallback: mmseg imports on mmcv-lite, and only there."""
import sys
import types

import pytest
import torch

from mvp_mm.compat import mmcv_ops


def test_mmseg_models_import():
    import mmseg.models  # noqa: F401  (fails on mmcv-lite without the layer)
    from mmseg.models.decode_heads import UPerHead  # noqa: F401


@pytest.mark.skipif(not getattr(sys.modules.get('mmcv.ops'),
                                '__mvp_mm_fallback__', False),
                    reason='compiled mmcv ops are installed')
def test_fallback_names_and_clear_error_for_the_rest():
    import mmcv.ops
    assert mmcv.ops.point_sample is not None
    with pytest.raises(ModuleNotFoundError, match='full mmcv'):
        from mmcv.ops import RoIAlign  # noqa: F401


def test_sigmoid_focal_loss_matches_mmseg_python_reference():
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    torch.manual_seed(0)
    pred = torch.randn(6, 5)
    target = torch.tensor([0, 1, 4, 2, 5, 3])  # 5 = no positive class
    ours = mmcv_ops.sigmoid_focal_loss(pred, target, 2.0, 0.25, None,
                                       'none')
    one_hot = torch.nn.functional.one_hot(target, 6)[:, :5].float()
    reference = py_sigmoid_focal_loss(pred, one_hot, gamma=2.0, alpha=0.25,
                                      reduction='none')
    torch.testing.assert_close(ours, reference)


def test_leaves_compiled_ops_alone(monkeypatch):
    real = types.ModuleType('mmcv.ops')
    monkeypatch.setitem(sys.modules, 'mmcv.ops', real)
    assert mmcv_ops.install_mmcv_ops_fallback() is False
    assert sys.modules['mmcv.ops'] is real
    monkeypatch.delitem(sys.modules, 'mmcv.ops')
    monkeypatch.setattr(mmcv_ops, '_compiled_ops_available', lambda: True)
    assert mmcv_ops.install_mmcv_ops_fallback() is False
    assert 'mmcv.ops' not in sys.modules
