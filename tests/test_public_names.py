"""The names users write stay put when files move (issue 20): the registered
``type=`` names, the public imports of ``mvp_mm.models`` and every
``mvp_mm.*`` path the README and the docs mention. (That every config
builds is tests/test_configs.py's sweep.)"""
import glob
import importlib
import os.path as osp
import re

import pytest
from tiny import REPO

#: Registry -> the names configs and checkpoints' configs use.
REGISTERED = {
    ('mmpretrain', 'MODELS'): [
        'MVP', 'MVPHead', 'MVPLoss', 'CLIPTargetGenerator',
        'TimmTargetGenerator', 'FusedBEiTPretrainViT', 'MVPBEiTViT'
    ],
    ('mmseg', 'MODELS'): ['MVPBEiT'],
    ('mmpretrain', 'TRANSFORMS'): [
        'ApplySampleSeed', 'BlockwiseMaskGenerator',
        'CheckedLoadImageFromFile', 'RandomResizedCropFromFile'
    ],
    ('mmpretrain', 'DATA_SAMPLERS'): ['ResumableSampler', 'SeededSampler'],
    ('mmpretrain', 'DATASETS'): ['ShardDataset'],
    ('mmpretrain', 'HOOKS'): [
        'AtomicCheckpointHook', 'IterationSeedHook', 'KNNMonitorHook',
        'MVPAlignmentHook', 'NonFiniteGuardHook', 'SaveOnSignalHook',
        'StrictCheckpointLoadHook', 'TimedCheckpointHook', 'WorkDirLockHook',
        'OptimizerStepParamSchedulerHook'
    ],
    ('mmpretrain', 'LOOPS'): ['ResumableEpochBasedTrainLoop'],
    # root registry: the runner_type of mmpretrain and mmseg configs alike
    ('mmengine', 'RUNNERS'): ['EffectiveBatchRunner'],
    ('mmpretrain', 'METRICS'): ['MVPAlignmentMetric'],
}

MODELS_PUBLIC = [
    'CLIPTargetGenerator', 'FrozenTeacher', 'FusedBEiTAttention',
    'FusedBEiTPretrainViT', 'FusedBEiTTransformerEncoderLayer', 'MVP',
    'MVPBEiT', 'MVPBEiTViT', 'MVPHead', 'MVPLoss', 'TimmTargetGenerator',
    'biased_attention', 'fold_quick_gelu'
]


@pytest.mark.parametrize('library,registry', sorted(REGISTERED))
def test_registered_names_stay(library, registry):
    import mvp_mm  # noqa: F401
    found = getattr(importlib.import_module(f'{library}.registry'), registry)
    missing = [n for n in REGISTERED[library, registry] if found.get(n) is None]
    assert not missing, f'{library} {registry} lost {missing}'


def test_models_public_imports_stay():
    models = importlib.import_module('mvp_mm.models')
    assert sorted(models.__all__) == sorted(MODELS_PUBLIC)
    for name in MODELS_PUBLIC:
        assert getattr(models, name).__module__.startswith('mvp_mm.models')


def _resolve(dotted: str):
    """A module, or an attribute of the longest importable prefix."""
    parts = dotted.split('.')
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_mvp_mm_path_in_the_docs_resolves():
    pages = [osp.join(REPO, 'README.md')] + sorted(
        glob.glob(osp.join(REPO, 'docs', '*.md')))
    named = set()
    for page in pages:
        text = open(page, encoding='utf-8').read()
        named.update(re.findall(r'\bmvp_mm(?:\.\w+)+', text))
        # file links such as mvp_mm/models/mvp.py
        for path in re.findall(r'\bmvp_mm/[\w/]+\.py\b', text):
            assert osp.isfile(osp.join(REPO, path)), f'{page}: {path}'
    assert named, 'the docs name no mvp_mm path: is the pattern wrong?'
    for dotted in sorted(named):
        _resolve(dotted)
