"""MVP: Multimodality-guided Visual Pre-training, as an OpenMMLab plugin.

``import mvp_mm`` (or ``custom_imports=dict(imports=['mvp_mm'])`` in a config)
registers into mmpretrain's registries:

- ``MVP`` (``MODELS``): the self-supervised algorithm,
- ``CLIPTargetGenerator`` (``MODELS``): the frozen CLIP vision tower,
- ``MVPHead`` / ``MVPLoss`` (``MODELS``): the linear head and Eq. 9,
- ``BlockwiseMaskGenerator`` (``TRANSFORMS``): BEiT's blockwise masking.

Paper: https://arxiv.org/abs/2203.05175
"""
from .compat import (install_cpu_distributed_launch,
                     install_dependency_warning_filters,
                     install_mmcv_ops_fallback,
                     install_runner_checkpoint_safe_globals,
                     install_runner_data_check)

install_dependency_warning_filters()  # before mmpretrain / mmseg import
install_mmcv_ops_fallback()
install_runner_checkpoint_safe_globals()
install_cpu_distributed_launch()
install_runner_data_check()

# Registration (and the datasets' / engine's public names).
from . import datasets, engine, evaluation, models  # noqa: E402,F401

__version__ = '0.1.0'
