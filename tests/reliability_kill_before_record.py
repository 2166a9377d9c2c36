"""Test-only (imported through custom_imports, with tests/ on PYTHONPATH):
the process is SIGKILLed right after AtomicCheckpointHook renames its first
checkpoint into place, before it writes last_checkpoint."""
import os
import signal

import mvp_mm.engine.hooks.atomic_checkpoint_hook as hook_module


def _killed_before_writing(path: str, text: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


hook_module.write_text_atomically = _killed_before_writing
