"""Read the weights of a checkpoint that mmengine's Runner wrote."""
import os.path as osp
from typing import Dict

import torch


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The ``state_dict`` of an mmengine checkpoint (or a bare state dict).

    Loads weights-only: a Runner checkpoint's message hub (mmengine's
    ``HistoryBuffer``, numpy arrays) is readable because ``import mvp_mm``
    allow-lists exactly those globals
    (:func:`mvp_mm.compat.install_runner_checkpoint_safe_globals`).

    Args:
        path (str): A ``.pth`` file.

    Returns:
        Dict[str, torch.Tensor]: Parameter name -> tensor, on the CPU.

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Checkpoint {path!r} does not exist; pass the .pth file that '
            'tools/train.py wrote (e.g. work_dirs/<config>/epoch_300.pth).')
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    return checkpoint.get('state_dict', checkpoint)
