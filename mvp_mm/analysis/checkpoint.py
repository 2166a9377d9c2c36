"""Read the weights of a checkpoint that mmengine's Runner wrote."""
import os.path as osp
from typing import Dict

import torch


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The ``state_dict`` of an mmengine checkpoint (or a bare state dict).

    A Runner checkpoint also pickles its message hub (mmengine's
    ``HistoryBuffer``, numpy arrays), which torch>=2.6's default
    ``torch.load(weights_only=True)`` refuses; it is read here with
    ``weights_only=False``, as mmengine itself did before torch 2.6, so only
    open checkpoints you trust (your own runs).

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
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    return checkpoint.get('state_dict', checkpoint)
