"""Let weights-only ``torch.load`` (torch >= 2.6) read mmengine checkpoints.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and mmengine
0.10.7 calls bare ``torch.load``. A weights-only load rebuilds tensors and
plain containers and refuses every other Python global, so a runner
checkpoint (``iter_N.pth`` / ``epoch_N.pth``, what ``--resume`` and MVP
fine-tuning read) fails with ``Unsupported global:
mmengine.logging.history_buffer.HistoryBuffer``. Besides tensors it holds the
message hub's logs, i.e. exactly these globals:

- ``mmengine.logging.HistoryBuffer`` (logged scalars, data only),
- numpy arrays, dtypes and scalars inside it (``ndarray``, ``dtype`` and
  the dtype classes of bool/int/float, ``multiarray._reconstruct``,
  ``multiarray.scalar``; numpy 1.x names them ``numpy.core.multiarray.*``,
  numpy 2.x ``numpy._core.multiarray.*``),
- ``getattr(HistoryBuffer, 'min' | 'max' | 'mean' | 'current')``: the
  statistic methods a HistoryBuffer pickles with itself.

:func:`install_runner_checkpoint_safe_globals` allow-lists those, and only
those, with ``torch.serialization.add_safe_globals``. ``builtins.getattr`` is
bound to :func:`history_buffer_statistic`, which returns nothing but those
four methods. Every load stays weights-only: a pretrained-weights file still
yields tensors only, a runner checkpoint additionally its logs, and a file
that asks for any other global (e.g. ``os.system``) is refused as before.
Nothing happens on torch < 2.6, where ``torch.load`` is not weights-only.
See https://pytorch.org/docs/stable/notes/serialization.html#weights-only.
"""
from typing import Any, List, Tuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.utils import digit_version

try:  # numpy >= 2
    from numpy._core import multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray

HISTORY_BUFFER_STATISTICS = ('min', 'max', 'mean', 'current')
# HistoryBuffer holds float64 / int64 arrays; any numeric dtype is data only.
NUMERIC_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                  np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                  np.float64)


def history_buffer_statistic(owner: Any, name: str) -> Any:
    """The only ``getattr`` a weights-only load may perform.

    Args:
        owner (Any): Must be ``HistoryBuffer``.
        name (str): One of ``HISTORY_BUFFER_STATISTICS``.

    Returns:
        Any: ``getattr(HistoryBuffer, name)``.
    """
    if owner is not HistoryBuffer or name not in HISTORY_BUFFER_STATISTICS:
        raise RuntimeError(
            f'Refused getattr({owner!r}, {name!r}) while loading a checkpoint '
            'weights-only: mvp_mm allows only the HistoryBuffer statistics '
            f'{HISTORY_BUFFER_STATISTICS} that mmengine runner checkpoints '
            'hold. If you trust this file, load it yourself with '
            'torch.load(path, weights_only=False).')
    return getattr(HistoryBuffer, name)


def runner_checkpoint_globals() -> List[Tuple[Any, str]]:
    """``(object, pickled name)`` of every non-tensor global in an mmengine
    runner checkpoint."""
    entries = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (history_buffer_statistic, 'builtins.getattr'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
    ]
    dtype_classes = dict.fromkeys(type(np.dtype(t)) for t in NUMERIC_DTYPES)
    for dtype_class in dtype_classes:
        if dtype_class is not np.dtype:  # numpy < 1.25 has no dtype classes
            name = f'{dtype_class.__module__}.{dtype_class.__name__}'
            entries.append((dtype_class, name))
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    return entries


def loads_weights_only_by_default() -> bool:
    """Whether this torch's ``torch.load`` is weights-only by default."""
    return digit_version(torch.__version__) >= digit_version('2.6.0')


def install_runner_checkpoint_safe_globals() -> bool:
    """Allow-list the globals of mmengine runner checkpoints, on torch >= 2.6.

    Returns:
        bool: True if installed, False on an older torch (nothing to do).
    """
    if not loads_weights_only_by_default():
        return False
    torch.serialization.add_safe_globals(runner_checkpoint_globals())
    return True
