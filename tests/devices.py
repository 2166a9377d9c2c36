"""Device parameters for tests that run on CPU here and on CUDA where a GPU
is: ``@pytest.mark.parametrize('device', DEVICES)``. The CUDA cases carry
the ``cuda`` marker (``pytest -m cuda`` selects them: tools/gpu_check.sh)
and are skipped, with the reason, where torch sees no GPU."""
import pytest
import torch

CUDA_MARKS = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason='no CUDA GPU (torch.cuda.is_available() is False); '
        'tools/gpu_check.sh runs these on a GPU machine')
]
TWO_GPU_MARKS = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        torch.cuda.device_count() < 2,
        reason=f'needs 2 CUDA GPUs, torch sees {torch.cuda.device_count()}')
]
DEVICES = ['cpu', pytest.param('cuda', marks=CUDA_MARKS)]
