"""Find the tensors of a state dict that hold NaN or Inf, and name them."""
from typing import List, Mapping

import torch

#: How many tensors an error message lists before "(+N more)".
MAX_LISTED = 10


def abs_max(tensor: torch.Tensor) -> torch.Tensor:
    """``max |x|`` of a non-empty floating tensor, 0-d on its device.

    One reduction, no copy, no host sync; NaN if the tensor holds a NaN,
    Inf if it holds an Inf (and no NaN).
    """
    return torch.linalg.vector_norm(tensor.detach(), float('inf'))


def describe_non_finite(state_dict: Mapping) -> List[str]:
    """One line for each floating tensor of ``state_dict`` with NaN or Inf.

    One :func:`abs_max` per floating tensor; the NaN / Inf counts are
    computed only for the tensors where it is not finite.

    Args:
        state_dict (Mapping): Name -> value. Values that are not floating
            point tensors (index buffers, step counters, metadata) are
            skipped.

    Returns:
        list[str]: e.g. ``'backbone.cls_token (float32, [1, 1, 768]): 768
        nan, 0 inf'``, in the order of ``state_dict``; empty if every tensor
        is finite.
    """
    found = []
    for name, value in state_dict.items():
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()
                and value.numel()) or bool(torch.isfinite(abs_max(value))):
            continue
        dtype = str(value.dtype).replace('torch.', '')
        found.append(
            f'{name} ({dtype}, {list(value.shape)}): '
            f'{int(torch.isnan(value).sum())} nan, '
            f'{int(torch.isinf(value).sum())} inf')
    return found


def list_head(items: List[str], limit: int = MAX_LISTED) -> str:
    """``items`` joined by ``'; '``, the first ``limit`` of them, then
    ``'(+N more)'``."""
    more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
    return '; '.join(items[:limit]) + more


def check_finite_state_dict(state_dict: Mapping, source: str,
                            fix: str) -> None:
    """Raise ``ValueError`` naming every tensor of ``state_dict`` that holds
    NaN or Inf.

    Args:
        state_dict (Mapping): Name -> tensor.
        source (str): What holds it, to start the message, e.g.
            ``"The checkpoint 'work_dirs/x/epoch_3.pth'"``.
        fix (str): What to do instead; ends the message.
    """
    found = describe_non_finite(state_dict)
    if found:
        raise ValueError(
            f'{source} holds NaN/Inf in {len(found)} tensor(s): '
            f'{list_head(found)}. A model with these weights computes NaN '
            f'losses and outputs. {fix}')
