"""A Runner whose console says only what needs attention (MVP's tools,
https://arxiv.org/abs/2203.05175)."""
import contextlib
import io
import logging
from typing import List

from mmengine.logging import MMLogger

from .runners import EffectiveBatchRunner


class QuietConsoleRunner(EffectiveBatchRunner):
    """The tools' runner (:class:`EffectiveBatchRunner`: mmengine's
    ``Runner``, lr scaling that counts accumulated batches) with its console
    at WARNING and above; the log file in the work dir keeps every level
    (environment, config, hooks, every iteration).

    The tools that use it (``tools/demo.py``, ``tools/test.py``) print their
    own short progress and result lines, and where the full log is
    (``runner.logger.log_file``). Ranks other than 0 keep mmengine's
    ERROR-only console.

    Attributes:
        console_warnings (List[str]): The messages that reached the console
            so far, for a tool's closing summary.
    """

    def __init__(self, *args, **kwargs) -> None:
        self.console_warnings: List[str] = []
        super().__init__(*args, **kwargs)

    def build_logger(self, *args, **kwargs) -> MMLogger:
        """mmengine's logger, with the console handler raised to WARNING."""
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):  # the console
                handler.setLevel(max(handler.level, logging.WARNING))
                handler.addFilter(self._record_console_warning)
        return logger

    def _record_console_warning(self, record: logging.LogRecord) -> bool:
        """A handler filter: note the message, let it through."""
        self.console_warnings.append(record.getMessage())
        return True

    def load_checkpoint(self, filename: str, *args, **kwargs) -> dict:
        """mmengine's ``load_checkpoint``; the line it prints with
        ``print()`` (``Loads checkpoint by local backend from path: ...``,
        mmengine's ``_load_checkpoint`` passes no logger) goes to the log
        file instead."""
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            checkpoint = super().load_checkpoint(filename, *args, **kwargs)
        for line in printed.getvalue().splitlines():
            self.logger.info(line)
        return checkpoint
