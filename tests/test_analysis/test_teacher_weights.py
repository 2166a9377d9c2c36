"""The captions' teacher line (mvp_mm/analysis/teacher_weights.py): from the
config where it is certain, from the run's log where the config allows the
fallback to random weights."""
import os

import pytest
from mmengine.config import Config

from mvp_mm.analysis import describe_teacher
from mvp_mm.analysis.teacher_weights import RANDOM_FALLBACK


def _cfg(**teacher) -> Config:
    return Config(dict(model=dict(target_generator=dict(
        type='CLIPTargetGenerator', model_name='ViT-B-16-quickgelu',
        **teacher))))


@pytest.mark.parametrize('teacher, log, expected', [
    (dict(pretrained=None), None, 'RANDOMLY INITIALISED (pretrained=None)'),
    (dict(pretrained='openai'), None, "pretrained ('openai')"),
    (dict(pretrained='/w/clip.pt', fallback_to_random=True),
     f'WARNING - !!! no file. {RANDOM_FALLBACK} CLIP',
     "RANDOMLY INITIALISED ('clip.pt' unavailable to the run)"),
    (dict(pretrained='openai', fallback_to_random=True), 'INFO - loaded',
     "pretrained ('openai')"),
    (dict(pretrained='openai', fallback_to_random=True), None,
     "'openai', or RANDOM if the run could not get them"),
])
def test_teacher_weights_from_config_and_run_log(tmp_path, teacher, log,
                                                 expected):
    checkpoint = tmp_path / 'epoch_6.pth'
    if log is not None:
        os.makedirs(tmp_path / '20250101_000000')
        (tmp_path / '20250101_000000' / '20250101_000000.log').write_text(
            f'2025/01/01 00:00:00 - mmengine - {log}\n')
    line = describe_teacher(_cfg(**teacher), str(checkpoint))
    assert line == 'teacher CLIP ViT-B-16-quickgelu: ' + expected or (
        expected.startswith("'") and expected in line), line


def test_no_teacher_no_line():
    assert describe_teacher(Config(dict(model=dict(type='X'))), 'a.pth') == ''
