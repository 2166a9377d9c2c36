"""Pretrained weights without network: one quick probe of the hub, then
cached weights load and missing ones fail (or, in the demo, fall back) at
once, instead of after huggingface_hub's ~48 s of retries."""
import http.server
import os
import socket
import threading
import time

import open_clip
import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import save_file
from tiny import TINY_CLIP, TINY_VIT

from mmpretrain.registry import MODELS
from mvp_mm.models.teachers.quick_gelu_folding import fold_quick_gelu
from mvp_mm.utils import hub
from mvp_mm.utils.hub import use_hub_offline_if_unreachable

CLIP = 'ViT-B-16-quickgelu'
CLIP_REPO = 'timm/vit_base_patch16_clip_224.openai'
DINO = 'vit_base_patch16_224.dino'
DINO_REPO = 'timm/vit_base_patch16_224.dino'
# huggingface_hub's retries alone take ~46 s per build (5 back-offs of
# 1-8 s, for two files); a build without them takes well under a second.
NO_RETRY_LOOP_S = 15


def write_cache_entry(cache, repo_id, filename, state_dict):
    """A file in huggingface_hub's cache layout, as a download leaves it."""
    commit = 'c0ffee' * 6 + 'c0ff'
    repo = cache / ('models--' + repo_id.replace('/', '--'))
    os.makedirs(repo / 'refs')
    os.makedirs(repo / 'snapshots' / commit)
    (repo / 'refs' / 'main').write_text(commit)
    save_file({k: v.contiguous() for k, v in state_dict.items()},
              str(repo / 'snapshots' / commit / filename))


def test_unreachable_hub_turns_offline_mode_on_once(offline_hub,
                                                    monkeypatch,
                                                    logged_warnings):
    probes = []
    probe = hub._probe
    monkeypatch.setattr(hub, '_probe',
                        lambda *args: probes.append(args) or probe(*args))
    assert use_hub_offline_if_unreachable() is True
    assert use_hub_offline_if_unreachable() is True
    assert constants.HF_HUB_OFFLINE is True
    assert len(probes) == 1
    assert len(logged_warnings) == 1
    message = logged_warnings[0].getMessage()
    assert constants.ENDPOINT in message and 'unreachable' in message
    assert 'HF_HUB_OFFLINE=1' in message


class _Hub(http.server.BaseHTTPRequestHandler):

    def do_HEAD(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_reachable_hub_stays_online(offline_hub, monkeypatch):
    server = http.server.HTTPServer(('127.0.0.1', 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(constants, 'ENDPOINT',
                            f'http://127.0.0.1:{server.server_port}')
        assert use_hub_offline_if_unreachable() is False
    finally:
        server.shutdown()
        server.server_close()
    assert constants.HF_HUB_OFFLINE is False


def test_silent_hub_counts_as_unreachable_after_the_timeout(offline_hub,
                                                           monkeypatch):
    """A host that takes the connection but never answers (or a DNS lookup
    that hangs) costs the probe's timeout, once."""
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen()  # connections wait in the backlog, unanswered
        monkeypatch.setattr(constants, 'ENDPOINT',
                            f'http://127.0.0.1:{silent.getsockname()[1]}')
        start = time.monotonic()
        assert use_hub_offline_if_unreachable(timeout=0.5) is True
        assert time.monotonic() - start < NO_RETRY_LOOP_S
    assert constants.HF_HUB_OFFLINE is True


def test_explicit_hf_hub_offline_is_obeyed(offline_hub, monkeypatch):
    def no_probe(*args):
        raise AssertionError('probed although HF_HUB_OFFLINE was set')

    monkeypatch.setattr(hub, '_probe', no_probe)
    monkeypatch.setenv('HF_HUB_OFFLINE', '0')  # "keep trying the hub"
    assert use_hub_offline_if_unreachable() is False
    assert constants.HF_HUB_OFFLINE is False


@pytest.mark.parametrize('teacher, repo_file', [
    (dict(type='CLIPTargetGenerator', model_name=CLIP, pretrained='openai',
          model_overrides=TINY_CLIP),
     f'{CLIP_REPO}/resolve/main/open_clip_pytorch_model.bin'),
    (dict(type='TimmTargetGenerator', model_name=DINO, pretrained=True,
          model_kwargs=TINY_VIT),
     f'{DINO_REPO}/resolve/main/model.safetensors'),
])
def test_missing_weights_fail_at_once_saying_how_to_get_them(
        offline_hub, teacher, repo_file):
    start = time.monotonic()
    with pytest.raises(RuntimeError) as error:
        MODELS.build(teacher)
    assert time.monotonic() - start < NO_RETRY_LOOP_S  # no retry loop
    message = str(error.value)
    assert 'not in the local cache' in message
    assert f'{constants.ENDPOINT}/{repo_file}' in message
    assert 'model.target_generator.pretrained=/path/to/' in message
    assert str(offline_hub) in message


def test_demo_teacher_falls_back_to_the_seeded_random_clip_at_once(
        offline_hub, logged_warnings):
    start = time.monotonic()
    teacher = MODELS.build(
        dict(type='CLIPTargetGenerator', model_name=CLIP,
             pretrained='openai', fallback_to_random=True,
             model_overrides=TINY_CLIP))
    assert time.monotonic() - start < NO_RETRY_LOOP_S
    assert any('RANDOMLY INITIALISED' in r.getMessage()
               and 'not in the local cache' in r.getMessage()
               for r in logged_warnings)
    torch.manual_seed(0)
    expected = open_clip.create_model(CLIP, pretrained=None, **TINY_CLIP)
    fold_quick_gelu(expected.visual)  # as the teacher does
    torch.testing.assert_close(teacher.teacher.state_dict(),
                               expected.visual.state_dict())


def test_cached_weights_are_used_offline(offline_hub):
    torch.manual_seed(1)
    clip = open_clip.create_model(CLIP, pretrained=None, **TINY_CLIP)
    write_cache_entry(offline_hub, CLIP_REPO, 'open_clip_model.safetensors',
                      clip.state_dict())
    fold_quick_gelu(clip.visual)  # as the teacher does
    dino = timm.create_model(DINO, pretrained=False, num_classes=0,
                             **TINY_VIT)
    write_cache_entry(offline_hub, DINO_REPO, 'model.safetensors',
                      dino.state_dict())

    start = time.monotonic()
    clip_teacher = MODELS.build(
        dict(type='CLIPTargetGenerator', model_name=CLIP,
             pretrained='openai', model_overrides=TINY_CLIP))
    dino_teacher = MODELS.build(
        dict(type='TimmTargetGenerator', model_name=DINO, pretrained=True,
             model_kwargs=TINY_VIT))
    assert time.monotonic() - start < NO_RETRY_LOOP_S
    torch.testing.assert_close(clip_teacher.teacher.state_dict(),
                               clip.visual.state_dict())
    torch.testing.assert_close(dino_teacher.teacher.state_dict(),
                               dino.state_dict())
    assert constants.HF_HUB_OFFLINE is True
