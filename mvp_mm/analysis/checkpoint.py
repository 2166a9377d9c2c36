"""Read the weights of a checkpoint that mmengine's Runner wrote."""
from typing import Dict

import torch

from mvp_mm.models.downstream.mvp_checkpoint import read_checkpoint


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The ``state_dict`` of an mmengine checkpoint (or a bare state dict),
    for the analysis and export tools.

    The downstream backbones' reader (:func:`read_checkpoint`: weights-only,
    a clear error for a missing, truncated or foreign file), with the fix
    that fits a tool's command line.

    Args:
        path (str): A ``.pth`` file.

    Returns:
        Dict[str, torch.Tensor]: Parameter name -> tensor, on the CPU.
    """
    return read_checkpoint(
        path, fix_hint='pass the .pth file that tools/train.py wrote '
        '(e.g. work_dirs/<config>/epoch_300.pth)')
