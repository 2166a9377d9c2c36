"""Narrow compatibility layers for the stack mvp_mm runs on.

Each layer acts only when the problem it works around is present, so a user
with the full, compiled ``mmcv`` and an older torch sees stock behaviour. The
Runner's data check acts on bad data only: it raises, earlier and clearer,
where mmengine would fail anyway.
"""
from .cpu_distributed import install_cpu_distributed_launch
from .dependency_warnings import install_dependency_warning_filters
from .mmcv_ops import install_mmcv_ops_fallback
from .runner_data_check import install_runner_data_check
from .torch_load import install_runner_checkpoint_safe_globals

__all__ = [
    'install_cpu_distributed_launch', 'install_dependency_warning_filters',
    'install_mmcv_ops_fallback', 'install_runner_checkpoint_safe_globals',
    'install_runner_data_check'
]
