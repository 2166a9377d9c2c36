"""Zero-shot probes: MVP (and its CLIP teacher) + CLIP's text tower."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from PIL import Image

from mmpretrain.models import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS
from mvp_mm.analysis.zero_shot import (ade20k_loader, build_text_model,
                                       imagenet_class_names,
                                       imagenet_loader, mvp_token_encoders,
                                       zero_shot_classification,
                                       zero_shot_segmentation)
from tiny import IMG, REPO, TINY_CLIP_WITH_TEXT, run_tool, tiny_pretrain_cfg

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]  # class c: channel c


def write_colour_imagenet(root):
    """Class folders whose images are one flat colour each."""
    for index, colour in enumerate(COLOURS):
        folder = osp.join(root, f'class_{index}')
        os.makedirs(folder)
        for i in range(2):
            Image.new('RGB', (80, 96), colour).save(
                osp.join(folder, f'{i}.JPEG'), quality=95)


def write_colour_imagenet_val(root):
    """mmpretrain's ImageNet layout: flat val/ and meta/val.txt labels."""
    os.makedirs(osp.join(root, 'val'))
    os.makedirs(osp.join(root, 'meta'))
    lines = []
    for index, colour in enumerate(COLOURS):
        name = f'ILSVRC2012_val_{index:08d}.JPEG'
        Image.new('RGB', (96, 80), colour).save(
            osp.join(root, 'val', name), quality=95)
        lines.append(f'{name} {index}')
    with open(osp.join(root, 'meta', 'val.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_colour_ade20k(root, size=96):
    """ADE20K layout; left half colour a (label a + 1), right half colour b,
    a top strip labelled 0 ("other", ignored)."""
    os.makedirs(osp.join(root, 'images', 'validation'))
    os.makedirs(osp.join(root, 'annotations', 'validation'))
    for i, (a, b) in enumerate([(0, 2), (1, 0)]):
        image = np.zeros((size, size, 3), np.uint8)
        image[:, :size // 2] = COLOURS[a]
        image[:, size // 2:] = COLOURS[b]
        label = np.zeros((size, size), np.uint8)
        label[:, :size // 2] = a + 1
        label[:, size // 2:] = b + 1
        label[:8] = 0
        name = f'ADE_val_{i:08d}'
        Image.fromarray(image).save(
            osp.join(root, 'images', 'validation', name + '.jpg'), quality=95)
        Image.fromarray(label).save(
            osp.join(root, 'annotations', 'validation', name + '.png'))


def colour_encoder(images):
    """Tokens = one-hot of each patch's dominant channel (CLS: the image's).

    With an identity text classifier this predicts exactly the colour class.
    """
    B, _, H, W = images.shape
    patches = images.unfold(2, 16, 16).unfold(3, 16, 16)  # [B,3,h,w,16,16]
    means = patches.mean((-1, -2)).flatten(2).transpose(1, 2)  # [B, M, 3]
    tokens = torch.cat([images.mean((2, 3))[:, None], means], 1)
    onehot = torch.nn.functional.one_hot(tokens.argmax(-1), 150)
    return onehot.float()  # [B, 1 + M, 150]


def preprocessor():
    return SelfSupDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1],
                                   to_rgb=True)


@pytest.mark.parametrize('write', [write_colour_imagenet,
                                   write_colour_imagenet_val])
def test_classification_scores_the_cls_token(tmp_path, write):
    write(str(tmp_path / 'val'))
    loader = imagenet_loader(str(tmp_path / 'val'), IMG, ['r', 'g', 'b'],
                             batch_size=2, num_workers=0)
    assert loader.dataset.metainfo['classes'] == ('r', 'g', 'b')
    classifier = torch.eye(150)[:3]  # [K=3, D]
    results = zero_shot_classification(
        dict(right=colour_encoder,
             wrong=lambda x: colour_encoder(x).roll(1, dims=-1)),
        classifier, loader, preprocessor())
    assert results['right']['top1'] == pytest.approx(100.0)
    assert results['wrong']['top1'] == pytest.approx(0.0)
    assert set(results['right']) == {'top1'}  # 3 classes: no top-5


def test_segmentation_miou_from_patch_tokens(tmp_path):
    write_colour_ade20k(str(tmp_path / 'ade'))
    loader = ade20k_loader(str(tmp_path / 'ade'), IMG, batch_size=2,
                           num_workers=0)
    names = [f'class{i}' for i in range(150)]
    results = zero_shot_segmentation(
        dict(right=colour_encoder,
             left=lambda x: colour_encoder(x.flip(-1))), torch.eye(150),
        loader, preprocessor(), names)
    # Patch-aligned halves: exact after bilinear upsampling of the scores.
    assert results['right']['mIoU'] == pytest.approx(100.0)
    assert results['right']['aAcc'] == pytest.approx(100.0)
    assert results['left']['mIoU'] < 50.0


def test_imagenet_wordnet_ids_map_to_clip_names():
    assert imagenet_class_names(['n01440764', 'n01443537']) == \
        ['tench', 'goldfish']
    with pytest.raises(ValueError, match='--class-names'):
        imagenet_class_names(['class_0'])


def test_zero_shot_needs_a_clip_teacher(tmp_path):
    cfg = tiny_pretrain_cfg(str(tmp_path), str(tmp_path))
    cfg.model.target_generator = dict(
        type='TimmTargetGenerator', pretrained=None,
        model_kwargs=dict(img_size=IMG, embed_dim=16, depth=1, num_heads=2))
    with pytest.raises(ValueError, match='CLIP teacher'):
        mvp_token_encoders(MODELS.build(cfg.model))


@pytest.mark.parametrize('features,target_norm', [('ln_post', 'none'),
                                                  ('projected', 'layer_norm')])
def test_zero_shot_needs_clip_multimodal_targets(tmp_path, features,
                                                 target_norm):
    cfg = tiny_pretrain_cfg(str(tmp_path), str(tmp_path))
    cfg.model.target_generator.update(features=features,
                                      target_norm=target_norm)
    with pytest.raises(ValueError, match="features='projected'"):
        mvp_token_encoders(MODELS.build(cfg.model))


def test_zero_shot_tool_compares_mvp_and_clip(tmp_path):
    write_colour_imagenet(str(tmp_path / 'val'))
    write_colour_ade20k(str(tmp_path / 'ade'))
    names = tmp_path / 'names.txt'
    names.write_text('red\ngreen\nblue\n')
    cfg = tiny_pretrain_cfg(str(tmp_path / 'val'), str(tmp_path / 'work'))
    cfg.model.target_generator.model_overrides = TINY_CLIP_WITH_TEXT
    config = str(tmp_path / 'tiny_mvp.py')
    cfg.dump(config)
    cfg.model.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(cfg.model)
    checkpoint = str(tmp_path / 'iter_4.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    out = str(tmp_path / 'zero_shot.json')
    run_tool('analysis/zero_shot.py', config, checkpoint,
             '--imagenet', tmp_path / 'val', '--class-names', names,
             '--ade20k', tmp_path / 'ade', '--templates', 'simple',
             '--num-workers', 0, '--out', out)
    with open(out) as f:
        results = json.load(f)
    for encoder in ('mvp', 'clip'):
        assert 0.0 <= results['imagenet'][encoder]['top1'] <= 100.0
        assert 0.0 <= results['ade20k'][encoder]['aAcc'] <= 100.0
        assert 0.0 <= results['ade20k'][encoder]['mIoU'] <= 100.0


def test_zero_shot_tool_runs_offline_on_a_demo_checkpoint(tmp_path,
                                                          offline_hub):
    """The demo config without network or cached CLIP weights: the teacher
    and the text tower both fall back to the seed-0 random CLIP, and the
    tool runs on a checkpoint trained that way."""
    data = tmp_path / 'data'
    write_colour_imagenet(str(data / 'train'))
    names = tmp_path / 'names.txt'
    names.write_text('red\ngreen\nblue\n')
    demo = osp.join(REPO, 'configs', 'pretrain', 'mvp_vit-tiny-p16_6e_demo.py')
    cfg = tiny_pretrain_cfg(str(data), str(tmp_path / 'work'), config=demo,
                            max_iters=2, clip_pretrained='openai')
    cfg.model.target_generator.model_overrides = TINY_CLIP_WITH_TEXT
    assert cfg.model.target_generator.fallback_to_random
    config = str(tmp_path / 'tiny_demo.py')
    cfg.dump(config)
    Runner.from_cfg(cfg).train()
    out = str(tmp_path / 'zero_shot.json')
    run_tool('analysis/zero_shot.py', config,
             str(tmp_path / 'work' / 'iter_2.pth'),
             '--imagenet', data / 'train', '--class-names', names,
             '--templates', 'simple', '--num-workers', 0, '--out', out)
    with open(out) as f:
        results = json.load(f)
    assert set(results['imagenet']) == {'mvp', 'clip'}
    # One random CLIP: the text tower's image side is the teacher.
    teacher = MODELS.build(cfg.model.target_generator).teacher
    text_model = build_text_model(cfg.model.target_generator)
    for name in ('conv1.weight', 'proj', 'positional_embedding'):
        torch.testing.assert_close(teacher.state_dict()[name],
                                   text_model.visual.state_dict()[name])
