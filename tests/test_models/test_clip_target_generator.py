"""CLIPTargetGenerator: equals open_clip, lives in CLIP's space, truly frozen;
the earlier features and the target normalisation of MVP's relatives."""
import math

import open_clip
import pytest
import torch
from tiny import IMG, TINY_CLIP

from mmpretrain.registry import MODELS
from mvp_mm.models import FrozenTeacher
from mvp_mm.models.teachers.frozen_teacher import IMAGENET_MEAN, IMAGENET_STD

MODEL = 'ViT-B-16-quickgelu'


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    """A tiny CLIP with random weights, saved as a local checkpoint file."""
    torch.manual_seed(1)
    model = open_clip.create_model(MODEL, pretrained=None, **TINY_CLIP)
    path = tmp_path_factory.mktemp('clip') / 'tiny_clip.pt'
    torch.save(model.state_dict(), path)
    return model.eval(), str(path)


def _generator(path, **kwargs):
    return MODELS.build(
        dict(type='CLIPTargetGenerator', model_name=MODEL, pretrained=path,
             model_overrides=TINY_CLIP, **kwargs))


def _pixels():
    torch.manual_seed(0)
    return torch.rand(2, 3, IMG, IMG) * 255  # RGB, 0-255


def _normalise(pixels, mean, std):
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std).view(1, 3, 1, 1)


def test_cls_equals_encode_image_and_patches_are_projected(clip_file):
    model, path = clip_file
    gen = _generator(path)
    pixels = _pixels()
    # the student's input: ImageNet mean/std; CLIP's own: its mean/std
    targets = gen(_normalise(pixels, IMAGENET_MEAN, IMAGENET_STD))
    clip_in = _normalise(pixels, [255 * m for m in model.visual.image_mean],
                         [255 * s for s in model.visual.image_std])
    with torch.no_grad():
        cls = model.encode_image(clip_in)
        model.visual.output_tokens = True
        _, tokens = model.visual(clip_in)  # after ln_post, NOT projected
        model.visual.output_tokens = False
    assert targets.shape == (2, 1 + (IMG // 16)**2, TINY_CLIP['embed_dim'])
    torch.testing.assert_close(targets[:, 0], cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        targets[:, 1:], tokens @ model.visual.proj, atol=1e-5, rtol=1e-5)
    assert gen.out_dims == TINY_CLIP['embed_dim']


def test_earlier_features_of_the_same_tower(clip_file):
    model, path = clip_file
    x = _normalise(_pixels(), IMAGENET_MEAN, IMAGENET_STD)
    projected = _generator(path)(x)
    after_norm = _generator(path, features='ln_post')
    last_block = _generator(path, features='last_block')
    width = TINY_CLIP['vision_cfg']['width']
    assert after_norm.out_dims == last_block.out_dims == width
    ln_post = after_norm(x)  # [B, 1 + M, W]
    raw = last_block(x)
    assert ln_post.shape == raw.shape == (2, 1 + (IMG // 16)**2, width)
    with torch.no_grad():  # open_clip's own ln_post and proj
        torch.testing.assert_close(ln_post, model.visual.ln_post(raw),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ln_post @ model.visual.proj, projected,
                                   atol=1e-5, rtol=1e-5)
    assert not torch.allclose(raw, ln_post, atol=1e-3)
    with pytest.raises(ValueError, match="features='proj'"):
        _generator(path, features='proj')


class _FixedTokens(FrozenTeacher):
    """A teacher whose tokens are written out, to check the normalisation."""

    def encode(self, x):
        tokens = torch.tensor([[1., 2., 3., 6.], [0., 0., 0., 0.]])
        return tokens.expand(x.size(0), -1, -1)  # [B, 1 + M, D]


def test_layer_norm_target_is_a_per_token_non_affine_layer_norm():
    teacher = _FixedTokens(torch.nn.Linear(1, 1), IMAGENET_MEAN,
                           IMAGENET_STD, target_norm='layer_norm')
    targets = teacher(torch.zeros(2, 3, 4, 4))
    # token 0: mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5, eps 1e-5
    expected = torch.tensor([-2., -1., 0., 3.]) / math.sqrt(3.5 + 1e-5)
    torch.testing.assert_close(targets[1, 0], expected)
    # a constant token: (0 - 0) / sqrt(0 + 1e-5) = 0
    torch.testing.assert_close(targets[0, 1], torch.zeros(4))
    raw = _FixedTokens(torch.nn.Linear(1, 1), IMAGENET_MEAN, IMAGENET_STD)
    assert raw(torch.zeros(1, 3, 4, 4))[0, 0].tolist() == [1., 2., 3., 6.]
    with pytest.raises(ValueError, match="target_norm='whiten'"):
        _FixedTokens(torch.nn.Linear(1, 1), IMAGENET_MEAN, IMAGENET_STD,
                     target_norm='whiten')


def test_input_normalisation_follows_the_preprocessor(clip_file):
    model, path = clip_file
    gen = _generator(path)
    pixels = _pixels()
    reference = gen(_normalise(pixels, IMAGENET_MEAN, IMAGENET_STD))
    gen.set_input_normalization((127.5, ) * 3, (127.5, ) * 3)
    again = gen(_normalise(pixels, (127.5, ) * 3, (127.5, ) * 3))
    torch.testing.assert_close(again, reference, atol=1e-5, rtol=1e-5)


def test_frozen_no_params_no_state_eval_mode(clip_file):
    _, path = clip_file
    gen = _generator(path)
    assert list(gen.parameters()) == []  # never reaches an optimizer
    assert gen.state_dict() == {}  # never saved into checkpoints
    gen.train()
    assert gen.teacher.training is False
    assert all(not p.requires_grad for p in gen.teacher.parameters())
    gen.to(torch.float64)  # .to() still reaches the hidden tower
    assert next(gen.teacher.parameters()).dtype == torch.float64


def test_unknown_name_tag_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='Unknown open_clip model_name'):
        MODELS.build(dict(type='CLIPTargetGenerator', model_name='ViT-X-99'))
    with pytest.raises(ValueError, match="Unknown pretrained tag 'nope'"):
        MODELS.build(dict(type='CLIPTargetGenerator', pretrained='nope'))
    missing = str(tmp_path / 'clip.pt')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        MODELS.build(dict(type='CLIPTargetGenerator', pretrained=missing))


def test_fallback_to_random_is_loud(tmp_path, logged_warnings):
    gen = MODELS.build(
        dict(type='CLIPTargetGenerator', model_name=MODEL,
             pretrained=str(tmp_path / 'absent.pt'),
             fallback_to_random=True, model_overrides=TINY_CLIP))
    assert gen.out_dims == TINY_CLIP['embed_dim']
    assert any('RANDOMLY INITIALISED' in r.getMessage()
               for r in logged_warnings)


def test_non_cls_pooling_tower_is_rejected():
    overrides = dict(TINY_CLIP)
    overrides['vision_cfg'] = dict(TINY_CLIP['vision_cfg'], pool_type='avg')
    with pytest.raises(ValueError, match='does not pool a CLS token'):
        MODELS.build(dict(type='CLIPTargetGenerator', model_name=MODEL,
                          pretrained=None, model_overrides=overrides))
