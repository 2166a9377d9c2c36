"""open_clip's root-logger messages, kept off the console of runs that
succeed (MVP's teacher and text tower, https://arxiv.org/abs/2203.05175).

open_clip logs through the *root* logger (``logging.error(...)``,
``logging.warning(...)`` in ``open_clip/factory.py``), and a root-logger call
with no root handler makes the logging module call ``basicConfig()``, which
installs a console handler on the user's root logger. So an offline demo
that falls back to a random teacher, as it should, printed
``ERROR:root:Failed to download weights for tag 'openai'`` and
``WARNING:root:No pretrained weights loaded``, although mvp_mm says the same
in its own words. :func:`open_clip_logs_captured` scopes the fix to the
project's own open_clip calls and leaves the root logger as it was.
"""
import contextlib
import logging
import os.path as osp
from typing import Iterator, List

from mmengine.logging import MMLogger


def _open_clip_dir() -> str:
    import open_clip
    return osp.dirname(osp.abspath(open_clip.__file__)) + osp.sep


class _OpenClipRecords(logging.Filter):
    """A root-logger filter that keeps open_clip's records from the root's
    handlers and collects them instead."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = _open_clip_dir()
        self.records: List[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if osp.abspath(record.pathname).startswith(self.folder):
            self.records.append(record)
            return False
        return True


class _AsIfNoHandler(logging.Handler):
    """Stands in for a missing root handler, so that ``logging.error()`` does
    not call ``basicConfig()``; what reaches it goes where the logging
    module sends records when no handler exists (``logging.lastResort``)."""

    def emit(self, record: logging.LogRecord) -> None:
        last_resort = logging.lastResort
        if last_resort is not None and record.levelno >= last_resort.level:
            last_resort.handle(record)


@contextlib.contextmanager
def open_clip_logs_captured() -> Iterator[List[logging.LogRecord]]:
    """Within the block, open_clip's root-logger records reach no console.

    They go to mmengine's current logger at DEBUG (``open_clip: ...``, in the
    log file of a run with ``log_level='DEBUG'``). A call that fails still
    says why: open_clip raises with the same reason it logged, and mvp_mm's
    errors chain that exception. Records of other libraries, and the root
    logger's level, handlers and filters, are untouched.

    Yields:
        List[logging.LogRecord]: open_clip's records, filled as they come.
    """
    root = logging.getLogger()
    records = _OpenClipRecords()
    stand_in = None if root.handlers else _AsIfNoHandler()
    root.addFilter(records)
    if stand_in is not None:
        root.addHandler(stand_in)
    try:
        yield records.records
    finally:
        root.removeFilter(records)
        if stand_in is not None:
            root.removeHandler(stand_in)
        logger = MMLogger.get_current_instance()
        for record in records.records:
            logger.debug(f'open_clip ({record.levelname}): '
                         f'{record.getMessage()}')
