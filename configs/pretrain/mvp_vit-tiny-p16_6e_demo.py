# The README's first command: MVP pre-training end to end on 2 CPU cores in a
# few minutes, on a generated ImageNet-format folder (tools/demo.py writes
# data/mvp_demo). Same algorithm, pipeline and teacher as the paper config;
# only the student size, the data and the schedule are shrunk.
_base_ = './mvp_vit-b16_300e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

data_root = 'data/mvp_demo/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='BlockwiseMaskGenerator', input_size=14,
         num_masking_patches=75, min_num_patches=16, min_aspect=0.3),
    dict(type='PackInputs')
]
# CustomDataset: same folder layout as ImageNet (train/<class>/*), but any
# number of classes.
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='train', pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='val', pipeline={{_base_.test_pipeline}}))

model = dict(
    # ViT-Tiny-sized student (DeiT-Ti widths), 4 blocks; 224 px keeps the
    # 14 x 14 grid of the CLIP ViT-B/16 teacher.
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=4, num_heads=3,
                  feedforward_channels=768)),
    # Real OpenAI CLIP weights when they can be had (open_clip cache or
    # download); otherwise a randomly initialised CLIP, with a loud warning.
    target_generator=dict(fallback_to_random=True))

# A fixed lr for batch 8 (auto-scaling 1.5e-3 from 2048 would be ~6e-6).
optim_wrapper = dict(optimizer=dict(lr=5e-4))
max_epochs = 6
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
