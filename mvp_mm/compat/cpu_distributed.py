"""Let mmengine's ``pytorch`` and ``slurm`` launchers train without GPUs.

mmengine 0.10.7 assumes one GPU per process under torchrun
(``tools/dist_train.sh``): ``_init_dist_pytorch`` calls
``torch.cuda.set_device(local_rank)`` ("Found no NVIDIA driver on your
system"), and ``Runner.wrap_model`` gives DDP ``device_ids=[local_rank]``,
which DDP refuses for a CPU module. On a machine with no accelerator
(mmengine's ``get_device() == 'cpu'``) :func:`install_cpu_distributed_launch`

- initialises the process group without ``set_device``, with the gloo
  backend (NCCL needs GPUs; a configured ``nccl`` is switched to ``gloo``
  with a warning), and
- lets ``MMDistributedDataParallel`` wrap a CPU module with
  ``device_ids=None``, as DDP requires, after turning SyncBN layers (mmseg's
  UperNet uses them) into plain BN, which DDP requires on CPU ("SyncBatchNorm
  layers only work with GPU modules"); mmengine does the same for
  non-distributed runs.

- tears the process group down when the process exits: mmengine never
  destroys it, and a gloo group left to interpreter shutdown makes a rank
  abort now and then (``terminate called without an active exception``,
  SIGABRT, exit code 1 after training finished) under the stock
  ``tools/train.py`` of mmpretrain / mmseg. On a normal exit the ranks
  first wait for each other (at most :data:`TEARDOWN_TIMEOUT`; a dead peer
  ends the wait at once), so none leaves while another still talks to it;
  after an uncaught exception the group is destroyed without waiting.

The same holds for mmengine's ``slurm`` launcher (``tools/slurm_train.sh``,
``tools/sbatch_train.sh``): its ``_init_dist_slurm`` sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` etc. from the ``SLURM_*`` variables, then
calls ``torch.cuda.set_device``; on CPU that call is skipped and the group
is gloo.

That makes ``bash tools/dist_train.sh CONFIG 2`` run on a laptop or a CI
machine. Nothing changes where a GPU (or NPU/MLU/MUSA) is present.
"""
import atexit
import logging
import sys
from datetime import timedelta
from unittest import mock

import torch
import torch.distributed as torch_dist
from mmengine.device import get_device
from mmengine.logging import print_log

_FLAG = '__mvp_mm_cpu_distributed__'

# How long an exiting rank waits for the others (e.g. while rank 0 writes
# the last checkpoint) before it destroys the process group anyway.
TEARDOWN_TIMEOUT = timedelta(minutes=5)


def leave_process_group() -> None:
    """Destroy the default process group, after a barrier on a normal exit.

    Registered with ``atexit`` where :func:`install_cpu_distributed_launch`
    initialised the group; a no-op if it is gone already (the project's
    ``tools/train.py`` tears it down itself).
    """
    if not torch_dist.is_initialized():
        return
    if getattr(sys, 'last_value', None) is None:  # no uncaught exception
        try:
            torch_dist.monitored_barrier(timeout=TEARDOWN_TIMEOUT)
        except RuntimeError as err:  # a peer died, or did not come
            print_log(
                f'Leaving the process group without the other ranks: {err}',
                logger='current', level=logging.WARNING)
    torch_dist.destroy_process_group()


def install_cpu_distributed_launch() -> bool:
    """Patch mmengine's torchrun set-up for CPU-only machines.

    Returns:
        bool: True if installed (now or before), False where an accelerator
        is present and mmengine is left untouched.
    """
    if get_device() != 'cpu':
        return False
    import mmengine.dist.utils as dist_utils
    from mmengine.model import revert_sync_batchnorm
    from mmengine.model.wrappers import MMDistributedDataParallel

    if getattr(dist_utils._init_dist_pytorch, _FLAG, False):
        return True
    init_with_gpu = dist_utils._init_dist_pytorch
    init_slurm_with_gpu = dist_utils._init_dist_slurm
    wrap_with_gpu = MMDistributedDataParallel.__init__

    def init_dist_pytorch_on_cpu(backend, init_backend='torch', **kwargs):
        if init_backend != 'torch':
            return init_with_gpu(backend, init_backend=init_backend, **kwargs)
        if backend != 'gloo':
            print_log(
                f'No GPU: distributed backend {backend!r} -> gloo.',
                logger='current', level=logging.WARNING)
        torch_dist.init_process_group(backend='gloo', **kwargs)
        atexit.register(leave_process_group)

    def init_dist_slurm_on_cpu(backend, port=None, init_backend='torch',
                               **kwargs):
        if init_backend != 'torch':
            return init_slurm_with_gpu(backend, port=port,
                                       init_backend=init_backend, **kwargs)
        if backend != 'gloo':
            print_log(
                f'No GPU: distributed backend {backend!r} -> gloo.',
                logger='current', level=logging.WARNING)
        # mmengine's environment set-up from SLURM_*, without its
        # torch.cuda.set_device(local_rank): there is no device to set.
        with mock.patch.object(torch.cuda, 'set_device', lambda device: None):
            init_slurm_with_gpu('gloo', port=port, **kwargs)
        atexit.register(leave_process_group)

    def wrap_cpu_module(self, module, *args, **kwargs):
        kwargs['device_ids'] = None  # DDP: None for a CPU module
        wrap_with_gpu(self, revert_sync_batchnorm(module), *args, **kwargs)

    setattr(init_dist_pytorch_on_cpu, _FLAG, True)
    dist_utils._init_dist_pytorch = init_dist_pytorch_on_cpu
    dist_utils._init_dist_slurm = init_dist_slurm_on_cpu
    MMDistributedDataParallel.__init__ = wrap_cpu_module
    return True
