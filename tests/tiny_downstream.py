"""Tiny versions of the downstream configs (classification, linear probing,
UperNet), for CPU tests: the real config files, shrunk to a 4-layer 32-wide
ViT on generated data."""
import copy
import os.path as osp

import torch
from mmengine.config import Config
from tiny import IMG, PRETRAIN_CFG, REPO, tiny_pretrain_cfg

from mvp_mm.models.downstream import resize_relative_position_table

CLS_DIR = osp.join(REPO, 'configs', 'classification')
SEG_DIR = osp.join(REPO, 'configs', 'segmentation')
CLS_FINETUNE = osp.join(CLS_DIR, 'vit-b16_mvp-pre_100e_in1k.py')
CLS_LINEAR = osp.join(CLS_DIR, 'vit-b16_mvp-pre_linear-100e_in1k.py')
SEG_UPERNET = osp.join(SEG_DIR,
                       'upernet_vit-b16_mvp-pre_512x512_160k_ade20k.py')

NUM_LAYERS = 4  # four ViT levels for Feature2Pyramid
WIDTH = 32
HEADS = 2
SEG_CROP = 2 * IMG  # 8 x 8 window vs 4 x 4 in pre-training: tables resized


SHARED_TABLE = 'backbone.rel_pos_bias.relative_position_bias_table'


def tiny_mvp_pretrain_cfg(data_root: str, work_dir: str,
                          max_iters: int = 2,
                          config: str = PRETRAIN_CFG) -> Config:
    """tests/tiny.py's pre-training config with 4 student layers."""
    cfg = tiny_pretrain_cfg(data_root, work_dir, config=config,
                            max_iters=max_iters)
    cfg.model.backbone.arch.num_layers = NUM_LAYERS
    return cfg


def assert_backbone_is_pretrained(backbone_state: dict, pretrain_state: dict,
                                  window=None, fresh=()) -> None:
    """Every downstream backbone tensor is the pre-trained one (relative
    position tables: the shared one, resized to ``window`` if given), except
    the ``fresh`` keys."""
    shared = pretrain_state[SHARED_TABLE]
    if window is not None:
        shared = resize_relative_position_table(shared, window)
    checked = 0
    for key, value in backbone_state.items():
        key = key[len('backbone.'):] if key.startswith('backbone.') else key
        if key.endswith('relative_position_index') or key in fresh:
            continue
        want = shared if key.endswith('relative_position_bias_table') \
            else pretrain_state['backbone.' + key]
        assert torch.equal(value, want), key
        checked += 1
    assert checked > 60  # 4 layers x 16 tensors + stem


def _runtime(work_dir: str, max_iters: int) -> dict:
    return dict(
        work_dir=work_dir,
        train_cfg=dict(_delete_=True, type='IterBasedTrainLoop',
                       max_iters=max_iters, val_interval=max_iters),
        default_hooks=dict(
            logger=dict(interval=1),
            checkpoint=dict(by_epoch=False, interval=max_iters)),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        optim_wrapper=dict(type='OptimWrapper'))


def _loader(dataset: dict, batch_size: int) -> dict:
    return dict(batch_size=batch_size, num_workers=0,
                persistent_workers=False, dataset=dataset)


def _resize_cls_pipeline(pipeline: list) -> list:
    sizes = dict(RandomResizedCrop=('scale', IMG),
                 ResizeEdge=('scale', IMG + IMG // 8),
                 CenterCrop=('crop_size', IMG))
    pipeline = copy.deepcopy(pipeline)
    for step in pipeline:
        if step['type'] in sizes:
            key, value = sizes[step['type']]
            step[key] = value
    return pipeline


def tiny_classification_cfg(config: str,
                            data_root: str,
                            work_dir: str,
                            pretrained: str,
                            max_iters: int = 3,
                            num_classes: int = 2) -> Config:
    """A classification config, shrunk: tiny ViT, ImageNet-format folders
    ``data_root/{train,val}/<class>/`` read by ``CustomDataset``, its own
    pipelines at 64 px, iteration-based loop, top-1 only."""
    cfg = Config.fromfile(config)
    full = cfg.model
    dataset = dict(_delete_=True, type='CustomDataset', data_root=data_root)
    cfg.merge_from_dict(copy.deepcopy(dict(
        data_preprocessor=dict(num_classes=num_classes),
        model=dict(
            backbone=dict(
                arch=dict(_delete_=True, embed_dims=WIDTH,
                          num_layers=NUM_LAYERS,
                          num_heads=HEADS, feedforward_channels=2 * WIDTH),
                img_size=IMG,
                init_cfg=dict(checkpoint=pretrained)),
            head=dict(in_channels=WIDTH, num_classes=num_classes)),
        train_dataloader=_loader(
            dict(dataset, data_prefix='train', pipeline=_resize_cls_pipeline(
                cfg.train_dataloader.dataset.pipeline)), 4),
        val_dataloader=_loader(
            dict(dataset, data_prefix='val', pipeline=_resize_cls_pipeline(
                cfg.val_dataloader.dataset.pipeline)), 4),
        val_evaluator=dict(_delete_=True, type='Accuracy', topk=(1, )),
        param_scheduler=[],
        **_runtime(work_dir, max_iters))))
    if full.backbone.get('frozen_stages', -1) > 0:
        cfg.model.backbone.frozen_stages = NUM_LAYERS
    if full.get('neck') is not None:
        cfg.model.neck.input_features = WIDTH
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.optim_wrapper.pop('loss_scale', None)
    return cfg


def tiny_segmentation_cfg(config: str,
                          data_root: str,
                          work_dir: str,
                          pretrained: str,
                          max_iters: int = 2) -> Config:
    """A segmentation config, shrunk: tiny ViT at 128 px (its 8 x 8 window
    resizes the 4 x 4 pre-training tables, as 512 px does 14 x 14), the
    config's own ADE20K pipelines at 1/4 scale on an ADE20K-format folder,
    sliding-window test, iteration-based loop."""
    cfg = Config.fromfile(config)
    crop = (SEG_CROP, SEG_CROP)
    scale = (4 * SEG_CROP, SEG_CROP)  # ADE20K's (2048, 512) / 4

    def shrink(pipeline):
        pipeline = copy.deepcopy(pipeline)
        for step in pipeline:
            if step['type'] in ('RandomResize', 'Resize'):
                step['scale'] = scale
            if step['type'] == 'RandomCrop':
                step['crop_size'] = crop
        return pipeline

    cfg.merge_from_dict(copy.deepcopy(dict(
        model=dict(
            data_preprocessor=dict(size=crop),
            backbone=dict(
                img_size=crop, embed_dims=WIDTH, num_layers=NUM_LAYERS,
                num_heads=HEADS, mlp_ratio=2,
                out_indices=list(range(NUM_LAYERS)),
                init_cfg=dict(checkpoint=pretrained)),
            neck=dict(embed_dim=WIDTH),
            decode_head=dict(in_channels=[WIDTH] * 4, channels=16),
            auxiliary_head=dict(in_channels=WIDTH, channels=8),
            test_cfg=dict(crop_size=crop, stride=(SEG_CROP * 2 // 3, ) * 2)),
        train_dataloader=_loader(dict(
            data_root=data_root,
            pipeline=shrink(cfg.train_dataloader.dataset.pipeline)), 2),
        val_dataloader=_loader(dict(
            data_root=data_root,
            pipeline=shrink(cfg.val_dataloader.dataset.pipeline)), 1),
        **_runtime(work_dir, max_iters))))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.optim_wrapper.paramwise_cfg.num_layers = NUM_LAYERS
    cfg.optim_wrapper.pop('loss_scale', None)
    return cfg
