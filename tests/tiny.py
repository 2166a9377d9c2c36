"""Tiny versions of the real configs, for CPU tests (shared by test files)."""
import copy
import os.path as osp
import runpy
import sys
from unittest import mock

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN_CFG = osp.join(REPO, 'configs', 'pretrain',
                        'mvp_vit-b16_300e_in1k.py')

IMG = 64  # 4 x 4 patches of 16 px
GRID = IMG // 16
NUM_MASKED = 6

TINY_BACKBONE = dict(
    arch=dict(_delete_=True, embed_dims=32, num_layers=2, num_heads=2,
              feedforward_channels=64),
    img_size=IMG)

# A tiny CLIP ViT (random weights, or a file a test writes).
TINY_CLIP = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=IMG, layers=2, width=32, patch_size=16,
                    head_width=16),
    text_cfg=dict(context_length=8, vocab_size=100, width=16, heads=2,
                  layers=1))

# A tiny CLIP whose text tower takes open_clip's real tokenizer output
# (zero-shot probes).
TINY_CLIP_WITH_TEXT = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=IMG, layers=1, width=32, patch_size=16,
                    head_width=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=16, heads=2,
                  layers=1))


# A tiny timm ViT teacher (TimmTargetGenerator's model_kwargs).
TINY_VIT = dict(img_size=IMG, embed_dim=24, depth=2, num_heads=2)


def tiny_teacher(teacher_type: str, clip_pretrained=None) -> dict:
    """Overrides that shrink a target generator of the given type."""
    if teacher_type == 'TimmTargetGenerator':
        return dict(pretrained=None, model_kwargs=TINY_VIT)
    return dict(pretrained=clip_pretrained, model_overrides=TINY_CLIP)


def tiny_mask(**kwargs) -> dict:
    return dict(type='BlockwiseMaskGenerator', input_size=GRID,
                num_masking_patches=NUM_MASKED, min_num_patches=2, **kwargs)


def tiny_pretrain_cfg(data_root: str,
                      work_dir: str,
                      config: str = PRETRAIN_CFG,
                      max_iters: int = 4,
                      batch_size: int = 4,
                      clip_pretrained=None) -> Config:
    """Any pretrain config, shrunk: tiny student and teacher, generated
    ImageNet-format data under ``data_root/train``, iteration-based loop.
    The data are masked iff the config's training pipeline masks."""
    cfg = Config.fromfile(config)
    teacher = tiny_teacher(cfg.model.target_generator.type, clip_pretrained)
    masks = [tiny_mask()] if any(
        step.type == 'BlockwiseMaskGenerator'
        for step in cfg.train_dataloader.dataset.pipeline) else []
    pipeline = [
        dict(type='ApplySampleSeed'),
        dict(type='CheckedLoadImageFromFile', on_error='raise'),
        dict(type='RandomResizedCrop', scale=IMG,
             crop_ratio_range=(0.5, 1.0), backend='pillow'),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        *masks,
        dict(type='PackInputs')
    ]
    cfg.merge_from_dict(copy.deepcopy(dict(
        work_dir=work_dir,
        model=dict(
            backbone=TINY_BACKBONE,
            target_generator=teacher),
        train_dataloader=dict(
            batch_size=batch_size, num_workers=0, persistent_workers=False,
            dataset=dict(_delete_=True, type='CustomDataset',
                         data_root=data_root, data_prefix='train',
                         pipeline=pipeline)),
        test_dataloader=dict(
            batch_size=batch_size, num_workers=0, persistent_workers=False,
            dataset=dict(_delete_=True, type='CustomDataset',
                         data_root=data_root, data_prefix='train',
                         pipeline=[
                             dict(type='LoadImageFromFile'),
                             dict(type='CenterCrop', crop_size=IMG),
                             *masks,
                             dict(type='PackInputs')
                         ])),
        optim_wrapper=dict(type='OptimWrapper'),
        param_scheduler=[],
        train_cfg=dict(_delete_=True, type='IterBasedTrainLoop',
                       max_iters=max_iters),
        default_hooks=dict(
            logger=dict(interval=1),
            checkpoint=dict(by_epoch=False, interval=max_iters)),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
    )))
    cfg.optim_wrapper.pop('loss_scale', None)
    # Held-out loaders of hooks (the demo's MVPAlignmentHook) and k-NN sets
    # (its KNNMonitorHook): the test data.
    for hook in cfg.get('custom_hooks', []):
        if 'dataloader' in hook:
            hook.dataloader = copy.deepcopy(cfg.test_dataloader)
        if 'memory' in hook:
            hook.memory = hook.query = dict(data_root=data_root,
                                            data_prefix='train')
            hook.update(k=2, batch_size=batch_size, num_workers=0)
    return cfg


def run_tool(relative_path: str, *args: str) -> None:
    """Run ``tools/<relative_path>`` as ``__main__`` with ``args``, in this
    process (the libraries are imported once for the whole test session)."""
    path = osp.join(REPO, 'tools', relative_path)
    with mock.patch.object(sys, 'argv', [path, *map(str, args)]):
        runpy.run_path(path, run_name='__main__')
