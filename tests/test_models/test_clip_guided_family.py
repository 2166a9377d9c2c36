"""MVP's CLIP-guided relatives (docs/clip_guided_mim.md): MaskDistill and
FD-CLIP as deltas on the MVP config, MVP without masking, and their
checkpoints in the unchanged fine-tuning, linear and UperNet configs."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from tiny import GRID, IMG, PRETRAIN_CFG, REPO, tiny_pretrain_cfg
from tiny_downstream import (CLS_FINETUNE, CLS_LINEAR, SEG_CROP, SEG_UPERNET,
                             assert_backbone_is_pretrained,
                             tiny_classification_cfg, tiny_mvp_pretrain_cfg,
                             tiny_segmentation_cfg)

from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.structures import DataSample
from mmseg.registry import MODELS as SEG_MODELS
from mvp_mm.utils import make_imagenet_folder

PRETRAIN_DIR = osp.join(REPO, 'configs', 'pretrain')
MASKDISTILL = osp.join(PRETRAIN_DIR, 'maskdistill_vit-b16_300e_in1k.py')
FD_CLIP = osp.join(PRETRAIN_DIR, 'fd-clip_vit-b16_300e_in1k.py')
VARIANTS = dict(maskdistill=MASKDISTILL, fd_clip=FD_CLIP)
TINY_CLIP_WIDTH = 32  # tests/tiny.py's TINY_CLIP vision width


def _steps(pipeline, kind):
    return [t for t in pipeline if t.type == kind]


def test_maskdistill_config_changes_target_tokens_loss_and_ratio_only():
    cfg, mvp = Config.fromfile(MASKDISTILL), Config.fromfile(PRETRAIN_CFG)
    assert cfg.model.head.loss == dict(
        type='MVPLoss', patches='masked', cls=False, criterion='smooth_l1',
        beta=1.0)
    assert cfg.model.target_generator == dict(
        mvp.model.target_generator, features='ln_post',
        target_norm='layer_norm')
    for loader in ('train_dataloader', 'test_dataloader'):
        pipeline = cfg[loader].dataset.pipeline
        base = mvp[loader].dataset.pipeline
        mask, = _steps(pipeline, 'BlockwiseMaskGenerator')
        assert mask.num_masking_patches == 75  # BEiT's count for "40%"
        assert [t for t in pipeline if t is not mask] == [
            t for t in base if t.type != 'BlockwiseMaskGenerator'
        ]
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg',
                'auto_scale_lr', 'data_preprocessor'):
        assert cfg[key] == mvp[key], key
    assert cfg.model.backbone == mvp.model.backbone


def test_fd_clip_config_follows_the_official_code():
    cfg, mvp = Config.fromfile(FD_CLIP), Config.fromfile(PRETRAIN_CFG)
    assert cfg.model.head.loss == dict(
        type='MVPLoss', patches='all', cls=True, criterion='smooth_l1',
        beta=2.0)
    assert cfg.model.target_generator == dict(
        mvp.model.target_generator, features='ln_post',
        target_norm='layer_norm')
    assert cfg.model.backbone == dict(mvp.model.backbone, drop_path_rate=0.2)
    # no masking anywhere; otherwise MVP's steps, bilinear crops
    for loader in ('train_dataloader', 'test_dataloader'):
        pipeline = cfg[loader].dataset.pipeline
        assert not _steps(pipeline, 'BlockwiseMaskGenerator')
        assert not _steps(pipeline, 'ColorJitter')  # FD has none
        assert len(pipeline) == len(mvp[loader].dataset.pipeline) - len(
            _steps(mvp[loader].dataset.pipeline, 'ColorJitter')) - 1
    crop, = _steps(cfg.train_dataloader.dataset.pipeline,
                   'RandomResizedCropFromFile')
    base_crop, = _steps(mvp.train_dataloader.dataset.pipeline,
                        'RandomResizedCropFromFile')
    assert crop == dict(base_crop, interpolation='bilinear')
    # lr 3e-4 x 2048 / 512, warm-up from 5e-7 x 4, cosine to 5e-6 x 4
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.2e-3)
    warmup, cosine = cfg.param_scheduler
    assert warmup.start_factor * 1.2e-3 == pytest.approx(2e-6)
    assert (warmup.end, cosine.begin, cosine.end) == (10, 10, 300)
    assert cosine.eta_min == pytest.approx(2e-5)
    assert cfg.auto_scale_lr.base_batch_size == 2048
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert 'relative_position_bias_table' not in keys  # 2-D: decayed
    assert keys['.gamma'].decay_mult == 0.0  # 1-D: not decayed, as MVP


def test_docs_page_names_the_configs_that_exist():
    with open(osp.join(REPO, 'docs', 'clip_guided_mim.md')) as f:
        paths = set(re.findall(r'configs/[\w/.-]+\.py', f.read()))
    assert {osp.relpath(c, REPO) for c in VARIANTS.values()} <= paths
    missing = [p for p in paths if not osp.isfile(osp.join(REPO, p))]
    assert missing == []


def _tiny_model(config, **loss):
    cfg = tiny_pretrain_cfg('', '', config=config)
    cfg.model.head.loss.update(loss)
    model = PRETRAIN_MODELS.build(cfg.model)
    model.init_weights()
    return model


def _samples(mask=None, count=2):
    samples = []
    for _ in range(count):
        sample = DataSample()
        if mask is not None:
            sample.set_mask(mask.clone())
        samples.append(sample)
    return samples


def test_no_mask_in_the_data_shows_the_student_whole_images():
    model = _tiny_model(FD_CLIP)
    assert model.head.fc.out_features == TINY_CLIP_WIDTH  # ln_post width
    imgs = torch.randn(2, 3, IMG, IMG)
    model.eval()
    with torch.no_grad():  # nothing masked = BEiT's unmasked forward
        torch.testing.assert_close(model._student_view(imgs, None),
                                   model.backbone(imgs, None)[0])
    model.train()
    loss = model.loss(imgs, _samples())['loss']
    assert torch.isfinite(loss)
    loss.backward()
    # every student parameter is in the graph (DDP without
    # find_unused_parameters), the mask token with an exactly zero gradient
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert torch.count_nonzero(model.backbone.mask_token.grad) == 0
    scores = model.alignment(imgs, None)
    assert set(scores) == {'cls', 'visible'}


def test_masked_scoring_needs_masks_and_masks_come_for_all_or_none():
    model = _tiny_model(FD_CLIP, patches='masked')
    imgs = torch.randn(2, 3, IMG, IMG)
    with pytest.raises(ValueError, match='needs the mask'):
        model.loss(imgs, _samples())
    mixed = _samples(torch.ones(GRID, GRID, dtype=torch.bool), count=1)
    mixed += _samples(count=1)
    with pytest.raises(ValueError, match='1 of 2 data samples carry no'):
        model.loss(imgs, mixed)


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet_folder(root, num_classes=2, images_per_class=2,
                         image_size=80, split='train')
    make_imagenet_folder(root, num_classes=2, images_per_class=1,
                         image_size=80, split='val', seed=1)
    return root


@pytest.fixture(scope='module', params=sorted(VARIANTS))
def variant_checkpoint(request, imagenet, tmp_path_factory):
    """Each variant's config trained 2 iterations tiny (4 layers, the
    downstream depth): its checkpoint file, state dict and test metrics."""
    work_dir = str(tmp_path_factory.mktemp(request.param))
    runner = Runner.from_cfg(
        tiny_mvp_pretrain_cfg(imagenet, work_dir,
                              config=VARIANTS[request.param]))
    runner.train()
    metrics = runner.test()
    path = osp.join(work_dir, 'iter_2.pth')
    return path, torch.load(path)['state_dict'], metrics


def test_variant_checkpoint_has_the_mvp_layout(variant_checkpoint):
    path, state, metrics = variant_checkpoint
    # the head predicts the variant's 768-analog targets; no teacher saved
    assert state['head.fc.weight'].shape[0] == TINY_CLIP_WIDTH
    assert not [k for k in state if 'target_generator' in k]
    masked = 'maskdistill' in path
    assert ('alignment/masked' in metrics) == masked
    assert all(-1 <= v <= 1 for v in metrics.values())


def test_variant_checkpoint_feeds_fine_tuning_and_linear_unchanged(
        variant_checkpoint, imagenet, tmp_path):
    path, state, _ = variant_checkpoint
    for config, fresh in ((CLS_FINETUNE, ('ln2.weight', 'ln2.bias')),
                          (CLS_LINEAR, ())):
        cfg = tiny_classification_cfg(config, imagenet, str(tmp_path), path)
        model = PRETRAIN_MODELS.build(cfg.model)
        model.init_weights()
        assert_backbone_is_pretrained(model.backbone.state_dict(), state,
                                      fresh=fresh)


def test_variant_checkpoint_feeds_upernet_unchanged(variant_checkpoint,
                                                    tmp_path):
    path, state, _ = variant_checkpoint
    cfg = tiny_segmentation_cfg(SEG_UPERNET, str(tmp_path), str(tmp_path),
                                path)
    model = SEG_MODELS.build(cfg.model)
    model.init_weights()
    assert_backbone_is_pretrained(model.backbone.state_dict(), state,
                                  window=(SEG_CROP // 16, SEG_CROP // 16))
