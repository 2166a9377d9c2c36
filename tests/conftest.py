import contextlib
import logging
import os
import os.path as osp
import socket
import sys
import warnings
from collections import OrderedDict

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

# The tools import their siblings (tools/argument_checks.py), which
# `python tools/X.py` finds beside the script; tests also run tools in this
# process (runpy). Appended, so that tools/test.py never shadows the
# standard library's `test` package.
sys.path.append(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                         'tools'))

# Two cores are shared by the whole suite; keep torch from oversubscribing.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_configure(config):
    """The `cuda` marker (tests/devices.py), and `import mvp_mm`'s filters
    for dependency warnings, for every test: pytest restores the warning
    filters after each test, but mvp_mm is imported (and installs them)
    only once. Plus one of the suite's own:
    it builds many segmentation runners in one process, and mmseg's config
    gives every one the same visualizer name."""
    config.addinivalue_line(
        'markers', 'cuda: runs on a CUDA GPU, skipped without one (tests/'
        'devices.py); `pytest -m cuda` runs only these (tools/gpu_check.sh)')
    from mvp_mm.compat import install_dependency_warning_filters
    install_dependency_warning_filters()
    warnings.filterwarnings(
        'ignore', message=r'.* instance named of visualizer has been created',
        category=UserWarning, module=r'mmengine\.utils\.manager\Z')


@pytest.fixture(autouse=True)
def _registered():
    """Every test sees mvp_mm's modules registered and compat layers on."""
    import mvp_mm  # noqa: F401


@contextlib.contextmanager
def _restored_global_state():
    """Runners make their registry scope ('mmpretrain' or 'mmseg') current,
    and deterministic runs switch torch's deterministic mode on: undo both."""
    scopes = OrderedDict(DefaultScope._instance_dict)
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(scopes)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(autouse=True, scope='module')
def _isolated_module():
    """No test file leaves global state behind (module fixtures included)."""
    with _restored_global_state():
        yield


@pytest.fixture(autouse=True)
def _isolated_test():
    """No test leaves global state behind for the next one."""
    with _restored_global_state():
        yield


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """No network to the Hugging Face hub, as on an offline machine: its
    endpoint refuses connections, its cache is empty (returned), and
    HF_HUB_OFFLINE is not set. Nothing is downloaded, with or without
    network."""
    from huggingface_hub import constants

    from mvp_mm.utils import hub
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]  # closed again: connections refused
    monkeypatch.setattr(constants, 'ENDPOINT', f'http://127.0.0.1:{port}')
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    for name in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, '_PROBES', {})
    return tmp_path / 'hub'


@pytest.fixture
def logged_warnings():
    """The warnings logged through mmengine's current logger in the test
    (``LogRecord`` list)."""
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
