import os

import pytest
import torch

# Two cores are shared by the whole suite; keep torch from oversubscribing.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _registered():
    """Every test sees mvp_mm's modules registered and compat layers on."""
    import mvp_mm  # noqa: F401
