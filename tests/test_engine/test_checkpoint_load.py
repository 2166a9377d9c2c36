"""Weights-only torch.load (torch >= 2.6) reads mmengine runner checkpoints
through mvp_mm's narrow allow-list, and still refuses anything else."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

from mvp_mm.compat import install_runner_checkpoint_safe_globals
from mvp_mm.compat.torch_load import loads_weights_only_by_default

needs_weights_only_default = pytest.mark.skipif(
    not loads_weights_only_by_default(),
    reason='torch < 2.6 does not load weights-only by default')


def _runner_like_checkpoint() -> dict:
    """What Runner.save_checkpoint writes, minus optimizer/scheduler."""
    hub = MessageHub.get_instance('test_checkpoint_load')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', 0.25)
    hub.update_scalar('train/iters', 3, count=2)
    hub.update_info('eta', np.float64(12.5))
    return dict(
        meta=dict(epoch=1, iter=3, seed=0, dataset_meta=dict(classes=['a'])),
        state_dict={'backbone.cls_token': torch.randn(1, 1, 8)},
        message_hub=hub.state_dict())


class _Evil:

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@needs_weights_only_default
def test_runner_checkpoint_loads_weights_only(tmp_path):
    path = str(tmp_path / 'iter_3.pth')
    torch.save(_runner_like_checkpoint(), path)
    loaded = torch.load(path)  # torch's default: weights_only=True
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(0.375)
    assert buffer.statistics('current') == 0.25
    assert loaded['message_hub']['runtime_info']['eta'] == 12.5
    assert loaded['meta']['iter'] == 3
    # mmengine's own loader (resume, load_from, init_cfg=Pretrained).
    via_mmengine = _load_checkpoint(path, map_location='cpu')
    assert torch.equal(via_mmengine['state_dict']['backbone.cls_token'],
                       loaded['state_dict']['backbone.cls_token'])


@needs_weights_only_default
@pytest.mark.parametrize('payload', [
    _Evil(eval, ('1 + 1', )),
    _Evil(getattr, (np.ndarray, 'tofile')),
    _Evil(getattr, (HistoryBuffer, '__init__')),
])
def test_other_globals_stay_refused(tmp_path, payload):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': payload}, path)
    with pytest.raises((pickle.UnpicklingError, RuntimeError)):
        torch.load(path)


def test_no_op_on_torch_before_2_6(monkeypatch):
    before = list(torch.serialization.get_safe_globals()) if hasattr(
        torch.serialization, 'get_safe_globals') else []
    monkeypatch.setattr(torch, '__version__', '2.5.1')
    assert install_runner_checkpoint_safe_globals() is False
    after = list(torch.serialization.get_safe_globals()) if hasattr(
        torch.serialization, 'get_safe_globals') else []
    assert len(after) == len(before)
