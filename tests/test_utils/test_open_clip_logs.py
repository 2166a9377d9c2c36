"""open_clip's root-logger lines stay off the console where mvp_mm calls
open_clip, the user's root logger is left as it was, and a failed call still
carries open_clip's reason."""
import contextlib
import logging

import pytest
from tiny import TINY_CLIP

from mvp_mm.models.teachers.pretrained_models import build_open_clip_model
from mvp_mm.utils.open_clip_logs import open_clip_logs_captured


@contextlib.contextmanager
def bare_root_logger():
    """The root logger of a script that configured no logging: no
    handlers, no filters, level WARNING (pytest's capture handlers, which
    it adds for each test phase, and any level an earlier test's library
    set, put aside)."""
    root = logging.getLogger()
    handlers, filters, level = root.handlers, root.filters, root.level
    root.handlers, root.filters = [], []
    root.setLevel(logging.WARNING)
    try:
        yield root
    finally:
        root.handlers, root.filters = handlers, filters
        root.setLevel(level)


def test_random_clip_logs_nothing_to_a_bare_root_logger(capfd):
    # open_clip logs 'No pretrained weights loaded ...' (WARNING, root):
    # without the capture, logging.warning() calls basicConfig() and the
    # line reaches stderr.
    with bare_root_logger() as root:
        build_open_clip_model('ViT-B-16', None, overrides=TINY_CLIP)
        assert root.handlers == [] and root.filters == []
    assert 'root' not in capfd.readouterr().err


def test_other_root_records_still_reach_the_users_handlers():
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    with bare_root_logger() as root:
        root.addHandler(handler)
        with open_clip_logs_captured() as captured:
            build_open_clip_model('ViT-B-16', None, overrides=TINY_CLIP)
            logging.warning('the user: still shown')
        assert root.handlers == [handler] and root.filters == []
    assert [r.getMessage() for r in seen] == ['the user: still shown']
    assert any('No pretrained weights loaded' in r.getMessage()
               for r in captured)


def test_a_failed_download_still_says_why(offline_hub, capfd):
    with bare_root_logger(), pytest.raises(RuntimeError) as error:
        build_open_clip_model('ViT-B-16', 'openai', overrides=TINY_CLIP)
    assert 'ERROR' not in capfd.readouterr().err
    # open_clip's own reason, chained under mvp_mm's error
    assert "Failed to download weights for tag 'openai'" in str(
        error.value.__cause__)
