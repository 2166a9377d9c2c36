"""Downstream configs: paper hyper-parameters, every config built tiny,
layer-wise lr decay as assigned by mmpretrain's and mmseg's constructors,
and tools/train.py's --pretrained flag."""
import importlib.util
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from tiny import REPO
from tiny_downstream import (CLS_DIR, CLS_FINETUNE, NUM_LAYERS, SEG_DIR,
                             SEG_UPERNET, tiny_classification_cfg,
                             tiny_segmentation_cfg)

from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS

CLS = {
    name: osp.join(CLS_DIR, name)
    for name in ('vit-b16_mvp-pre_100e_in1k.py', 'vit-l16_mvp-pre_50e_in1k.py',
                 'vit-b16_mvp-pre_linear-100e_in1k.py')
}
SEG = {
    name: osp.join(SEG_DIR, name)
    for name in ('upernet_vit-b16_mvp-pre_512x512_160k_ade20k.py',
                 'upernet_vit-l16_mvp-pre_512x512_160k_ade20k.py')
}


def _pretrain_output(arch: str) -> str:
    """Where tools/train.py writes the last checkpoint of a pretrain config
    (its default work dir: work_dirs/<config name>/)."""
    name = f'mvp_vit-{arch}16_300e_in1k'
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'pretrain', name + '.py'))
    return f'work_dirs/{name}/epoch_{cfg.train_cfg.max_epochs}.pth'


def _warmup_and_length(cfg):
    warmup, main = cfg.param_scheduler
    return warmup.end, main.end


def test_fine_tuning_configs_follow_section_4_1():
    base = Config.fromfile(CLS['vit-b16_mvp-pre_100e_in1k.py'])
    large = Config.fromfile(CLS['vit-l16_mvp-pre_50e_in1k.py'])
    for cfg, lr, epochs, warmup, arch, decay in (
            (base, 4e-3, 100, 20, 'base', 0.65),
            (large, 1e-3, 50, 5, 'large', 0.75)):
        optimizer = cfg.optim_wrapper.optimizer
        assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == (
            'AdamW', lr, 0.05)
        assert cfg.train_cfg.max_epochs == epochs
        assert _warmup_and_length(cfg) == (warmup, epochs)
        assert cfg.param_scheduler[1].type == 'CosineAnnealingLR'
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == decay
        assert cfg.model.backbone.arch == arch
        assert cfg.model.backbone.use_rel_pos_bias  # one table per layer
        assert cfg.model.backbone.init_cfg.checkpoint == _pretrain_output(
            arch[0])
        # lr at the documented total batch (8 GPUs x 128)
        assert 8 * cfg.train_dataloader.batch_size == \
            cfg.auto_scale_lr.base_batch_size == 1024
        # the BEiT recipe where the paper is silent
        assert [a.type for a in cfg.model.train_cfg.augments] == [
            'Mixup', 'CutMix'
        ]
        assert cfg.model.head.loss.type == 'LabelSmoothLoss'
        steps = [t.type for t in cfg.train_dataloader.dataset.pipeline]
        assert 'RandAugment' in steps and 'RandomErasing' in steps
        # normalised as in pre-training
        assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert large.model.head.in_channels == 1024


def test_linear_probing_config_freezes_the_whole_backbone():
    cfg = Config.fromfile(CLS['vit-b16_mvp-pre_linear-100e_in1k.py'])
    backbone = cfg.model.backbone
    assert backbone.frozen_stages == 12 and backbone.final_norm
    assert backbone.out_type == 'cls_token'
    assert cfg.model.neck.type == 'ClsBatchNormNeck'  # MAE
    assert cfg.train_cfg.max_epochs == 100
    assert _warmup_and_length(cfg) == (10, 100)
    assert backbone.init_cfg.checkpoint == _pretrain_output('b')


def test_segmentation_configs_follow_section_4_1():
    for arch, lr, decay in (('b', 3e-4, 0.65), ('l', 2e-5, 0.95)):
        name = f'upernet_vit-{arch}16_mvp-pre_512x512_160k_ade20k.py'
        cfg = Config.fromfile(SEG[name])
        model = cfg.model
        assert model.backbone.type == 'MVPBEiT'
        assert tuple(model.backbone.img_size) == (512, 512)
        assert model.backbone.init_cfg.checkpoint == _pretrain_output(arch)
        assert model.get('pretrained') is None
        assert 8 * cfg.train_dataloader.batch_size == \
            cfg.auto_scale_lr.base_batch_size == 16
        assert cfg.train_cfg.max_iters == 160000
        assert cfg.param_scheduler[-1].end == 160000
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.optim_wrapper.optimizer.lr == lr
        assert cfg.optim_wrapper.constructor == \
            'LearningRateDecayOptimizerConstructor'
        assert cfg.optim_wrapper.paramwise_cfg.decay_type == 'layer_wise_vit'
        assert cfg.optim_wrapper.paramwise_cfg.decay_rate == decay
        # mmseg's constructor counts layers from the config, not the model
        assert cfg.optim_wrapper.paramwise_cfg.num_layers == \
            model.backbone.num_layers
        assert len(model.backbone.out_indices) == 4
        assert model.backbone.out_indices[-1] == model.backbone.num_layers - 1
        assert model.neck.type == 'Feature2Pyramid'
        assert model.neck.embed_dim == model.backbone.embed_dims
        assert model.decode_head.type == 'UPerHead'
        assert model.decode_head.num_classes == 150
        assert model.auxiliary_head.type == 'FCNHead'
        assert model.test_cfg.mode == 'slide'
        assert tuple(model.test_cfg.crop_size) == (512, 512)
        dataset = cfg.train_dataloader.dataset
        assert dataset.type == 'ADE20KDataset'
        crop = [t for t in dataset.pipeline if t.type == 'RandomCrop'][0]
        assert tuple(crop.crop_size) == (512, 512)
        for loader in (cfg.train_dataloader, cfg.test_dataloader):
            load = [t for t in loader.dataset.pipeline
                    if t.type == 'LoadAnnotations'][0]
            assert load.reduce_zero_label


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A tiny MVP checkpoint (4 layers, 32 wide) in the pre-training key
    layout, for building the tiny downstream models."""
    torch.manual_seed(0)
    student = PRETRAIN_MODELS.build(
        dict(type='BEiTPretrainViT', _scope_='mmpretrain',
             arch=dict(embed_dims=32, num_layers=NUM_LAYERS, num_heads=2,
                       feedforward_channels=64),
             img_size=64, use_abs_pos_emb=False, use_rel_pos_bias=False,
             use_shared_rel_pos_bias=True, layer_scale_init_value=0.1,
             final_norm=True, out_type='raw'))
    with torch.no_grad():
        for param in student.parameters():
            param.normal_(0, 0.1)
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_300.pth')
    torch.save(dict(state_dict={
        'backbone.' + k: v for k, v in student.state_dict().items()}), path)
    return path


@pytest.mark.parametrize('name', sorted(CLS))
def test_classification_config_builds_tiny(name, checkpoint, tmp_path):
    cfg = tiny_classification_cfg(CLS[name], str(tmp_path), str(tmp_path),
                                  checkpoint)
    model = PRETRAIN_MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == 'MVPBEiTViT'
    logits = model(torch.randn(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 2)


@pytest.mark.parametrize('name', sorted(SEG))
def test_segmentation_config_builds_tiny(name, checkpoint, tmp_path):
    cfg = tiny_segmentation_cfg(SEG[name], str(tmp_path), str(tmp_path),
                                checkpoint)
    model = SEG_MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    assert type(model.backbone).__name__ == 'MVPBEiT'
    features = model.neck(model.backbone(torch.randn(1, 3, 128, 128)))
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4]  # 1/4 .. 1/32
    logits = model(torch.randn(1, 3, 128, 128), mode='tensor')
    assert logits.shape == (1, 150, 32, 32)


def _expected_scale(name: str, num_layers: int, decay: float) -> float:
    """BEiT's layer-wise lr decay: block i gets decay^(N - i), the patch
    embedding and CLS token decay^(N + 1), everything after the blocks 1."""
    parts = name.split('.')
    if name.startswith('backbone.layers.'):
        return decay**(num_layers - int(parts[2]))
    if name == 'backbone.cls_token' or name.startswith('backbone.patch_embed'):
        return decay**(num_layers + 1)
    return 1.0


def _lr_by_name(optim_wrapper) -> dict:
    lrs = {}
    for group in optim_wrapper.optimizer.param_groups:
        names = group.get('param_names') or [group['param_name']]
        for name in names:
            lrs[name] = group['lr']
    return lrs


def test_classification_layer_wise_lr(checkpoint, tmp_path):
    cfg = tiny_classification_cfg(CLS_FINETUNE, str(tmp_path), str(tmp_path),
                                  checkpoint)
    model = PRETRAIN_MODELS.build(cfg.model)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base, decay = 4e-3, 0.65
    lrs = _lr_by_name(wrapper)
    assert set(lrs) == {n for n, p in model.named_parameters()}
    for name, lr in lrs.items():
        assert lr == pytest.approx(
            base * _expected_scale(name, NUM_LAYERS, decay)), name
    assert lrs['backbone.layers.3.attn.qkv.weight'] == pytest.approx(
        base * decay)
    assert lrs['head.fc.weight'] == pytest.approx(base)
    no_decay = {g['param_name'] for g in wrapper.optimizer.param_groups
                if g['weight_decay'] == 0}
    assert 'backbone.layers.0.gamma_1' in no_decay
    assert 'backbone.layers.0.attn.q_bias' in no_decay
    assert 'backbone.layers.0.attn.qkv.weight' not in no_decay


def test_segmentation_layer_wise_lr(checkpoint, tmp_path):
    cfg = tiny_segmentation_cfg(SEG_UPERNET, str(tmp_path), str(tmp_path),
                                checkpoint)
    model = SEG_MODELS.build(cfg.model)
    with DefaultScope.overwrite_default_scope('mmseg'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base, decay = 3e-4, 0.65
    lrs = _lr_by_name(wrapper)
    assert set(lrs) == {n for n, p in model.named_parameters()}
    for name, lr in lrs.items():
        assert lr == pytest.approx(
            base * _expected_scale(name, NUM_LAYERS, decay)), name
    assert lrs['decode_head.conv_seg.weight'] == pytest.approx(base)
    assert lrs['neck.upsample_4x.0.weight'] == pytest.approx(base)
    assert lrs['backbone.layers.0.attn.proj.weight'] == pytest.approx(
        base * decay**NUM_LAYERS)


def test_linear_probing_optimises_the_head_only(checkpoint, tmp_path):
    cfg = tiny_classification_cfg(CLS['vit-b16_mvp-pre_linear-100e_in1k.py'],
                                  str(tmp_path), str(tmp_path), checkpoint)
    model = PRETRAIN_MODELS.build(cfg.model)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    trained = {id(p) for g in wrapper.optimizer.param_groups
               for p in g['params'] if p.requires_grad}
    assert trained == {id(p) for p in model.head.parameters()}
    assert not any(p.requires_grad for p in model.backbone.parameters())


def _train_tool():
    spec = importlib.util.spec_from_file_location(
        'mvp_train_tool', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_tool_pretrained_flag(monkeypatch, tmp_path):
    tool = _train_tool()
    checkpoint = str(tmp_path / 'mvp.pth')  # --pretrained must exist
    open(checkpoint, 'wb').close()
    config = SEG['upernet_vit-b16_mvp-pre_512x512_160k_ade20k.py']
    monkeypatch.setattr(sys, 'argv',
                        ['train.py', config, '--pretrained', checkpoint])
    args = tool.parse_args()
    cfg = tool.merge_args(Config.fromfile(config), args)
    assert cfg.model.backbone.init_cfg.checkpoint == checkpoint
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    pretrain = osp.join(REPO, 'configs/pretrain/mvp_vit-b16_300e_in1k.py')
    monkeypatch.setattr(sys, 'argv',
                        ['train.py', pretrain, '--pretrained', checkpoint])
    with pytest.raises(ValueError, match='has no backbone'):
        tool.merge_args(Config.fromfile(pretrain), tool.parse_args())
