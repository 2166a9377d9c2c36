"""Teachers beyond OpenAI's CLIP (paper Table 5): timm ViTs, other open_clip
towers, and the DINO-guidance config."""
import copy
import os.path as osp

import pytest
import timm
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner
from safetensors.torch import save_file

from mmpretrain.registry import MODELS
from mvp_mm.models import TimmTargetGenerator
from mvp_mm.utils import make_imagenet_folder
from tiny import IMG, REPO, TINY_BACKBONE, TINY_VIT, tiny_pretrain_cfg

DINO_CFG = osp.join(REPO, 'configs', 'pretrain',
                    'mvp-dino-guidance_vit-b16_300e_in1k.py')
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def tiny_timm_teacher(**kwargs) -> TimmTargetGenerator:
    kwargs.setdefault('pretrained', None)
    return TimmTargetGenerator(
        'vit_base_patch16_224.dino',
        model_kwargs=dict(TINY_VIT, **kwargs.pop('model_kwargs', {})),
        **kwargs)


def test_timm_teacher_gives_cls_and_patch_features_in_its_own_norm():
    teacher = tiny_timm_teacher()
    assert (teacher.out_dims, teacher.img_size, teacher.patch_size) == \
        (24, IMG, 16)
    # The student normalises differently from DINO: the teacher must undo it.
    student_mean, student_std = [127.5] * 3, [127.5] * 3
    teacher.set_input_normalization(student_mean, student_std)
    pixels = torch.rand(2, 3, IMG, IMG) * 255
    student_input = (pixels - 127.5) / 127.5
    dino_input = (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / \
        torch.tensor(STD).view(1, 3, 1, 1)
    out = teacher(student_input)
    assert out.shape == (2, 1 + (IMG // 16)**2, 24)
    expected = teacher.teacher.forward_features(dino_input)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    # MaskDistill / FD's normalisation of the same tokens
    normed = tiny_timm_teacher(target_norm='layer_norm')
    normed.set_input_normalization(student_mean, student_std)
    torch.testing.assert_close(normed(student_input),
                               F.layer_norm(expected, (24, )),
                               atol=1e-4, rtol=1e-4)


def test_timm_teacher_is_frozen_like_the_clip_one():
    teacher = tiny_timm_teacher()
    assert list(teacher.parameters()) == []
    assert list(teacher.state_dict()) == []
    teacher.train()
    assert not teacher.teacher.training
    assert not any(p.requires_grad for p in teacher.teacher.parameters())
    x = torch.randn(1, 3, IMG, IMG, requires_grad=True)
    assert not teacher(x).requires_grad


def test_timm_teacher_drops_register_tokens():
    teacher = tiny_timm_teacher(model_kwargs=dict(reg_tokens=4))
    assert teacher.num_prefix_tokens == 5
    x = torch.randn(1, 3, IMG, IMG)
    out = teacher(x)
    full = teacher.teacher.forward_features(x)  # [1, 5 + 16, D]
    assert out.shape[1] == 1 + 16
    torch.testing.assert_close(out[:, 0], full[:, 0])
    torch.testing.assert_close(out[:, 1:], full[:, 5:])


def test_timm_teacher_loads_a_local_weight_file(tmp_path):
    source = timm.create_model('vit_base_patch16_224', num_classes=0,
                               **TINY_VIT)
    path = str(tmp_path / 'dino_tiny.safetensors')
    save_file(source.state_dict(), path)
    teacher = tiny_timm_teacher(pretrained=path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(teacher.teacher.state_dict()[key], value)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        tiny_timm_teacher(pretrained=str(tmp_path / 'missing.pth'))


def test_timm_teacher_rejects_unknown_model_and_models_without_cls():
    with pytest.raises(ValueError, match='Unknown timm model'):
        TimmTargetGenerator('vit_nonexistent_patch16', pretrained=None)
    with pytest.raises(ValueError, match='class token'):
        tiny_timm_teacher(model_kwargs=dict(class_token=False,
                                            global_pool='avg'))


def test_dino_guidance_config_trains_tiny(tmp_path):
    cfg = Config.fromfile(DINO_CFG)
    teacher = cfg.model.target_generator
    # Table 5's setting: DINO ViT-B/16 in place of CLIP, all else unchanged.
    assert teacher.type == 'TimmTargetGenerator'
    assert teacher.model_name == 'vit_base_patch16_224.dino'
    assert teacher.pretrained is True
    base = Config.fromfile(osp.join(REPO, 'configs', 'pretrain',
                                    'mvp_vit-b16_300e_in1k.py'))
    assert cfg.model.backbone == base.model.backbone
    assert cfg.optim_wrapper == base.optim_wrapper
    assert cfg.train_cfg == base.train_cfg

    make_imagenet_folder(str(tmp_path / 'in'), 2, 4, 80)
    cfg = tiny_pretrain_cfg(str(tmp_path / 'in'), str(tmp_path / 'work'),
                            config=DINO_CFG, max_iters=2)
    cfg.model.target_generator = dict(
        type='TimmTargetGenerator', model_name=teacher.model_name,
        pretrained=None, model_kwargs=TINY_VIT)
    runner = Runner.from_cfg(cfg)
    assert runner.model.head.fc.out_features == 24  # the teacher's width
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert -1.0 <= loss <= 1.0
    assert osp.isfile(str(tmp_path / 'work' / 'iter_2.pth'))


@pytest.mark.parametrize('model_name,embed_dim', [
    ('ViT-B-16', 24),  # LAION/DataComp-style tower (GELU)
    ('ViT-L-14-quickgelu', 40),  # OpenAI-style tower (QuickGELU)
])
def test_any_open_clip_tower_is_a_teacher_through_config(
        model_name, embed_dim):
    tiny = dict(
        embed_dim=embed_dim,
        vision_cfg=dict(image_size=IMG, layers=1, width=32, patch_size=16,
                        head_width=16),
        text_cfg=dict(context_length=8, vocab_size=100, width=16, heads=2,
                      layers=1))
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'pretrain',
                                   'mvp_vit-b16_300e_in1k.py'))
    cfg.merge_from_dict(dict(model=dict(
        backbone=copy.deepcopy(TINY_BACKBONE),  # merging pops `_delete_`
        target_generator=dict(model_name=model_name, pretrained=None,
                              model_overrides=tiny))))
    model = MODELS.build(cfg.model)
    assert model.target_generator.model_name == model_name
    assert model.target_generator.out_dims == embed_dim
    assert model.head.fc.out_features == embed_dim
    # A QuickGELU tower's MLPs are folded into in-place SiLU (same function).
    act = model.target_generator.teacher.transformer.resblocks[0].mlp.gelu
    assert isinstance(act, torch.nn.SiLU) == model_name.endswith('quickgelu')
    imgs = torch.randn(2, 3, IMG, IMG)
    mask = torch.zeros(2, IMG // 16, IMG // 16, dtype=torch.bool)
    scores = model.alignment(imgs, mask)
    assert scores['cls'].shape == (2, )
