# MVP pre-training, ViT-B/16 student, CLIP ViT-B/16 teacher, 300 epochs, IN-1K.
# Paper: "MVP: Multimodality-guided Visual Pre-training" (ECCV 2022),
# https://arxiv.org/abs/2203.05175. "MVP is easily implemented upon BEIT, i.e.,
# directly changing the tokenizer" (§1), so this is a delta on mmpretrain's
# BEiT v1 recipe: every value below that the paper gives cites its line; every
# value it inherits from the base (BEiT) is named in the comments too.
_base_ = 'mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

# ---------------------------------------------------------------- data
data_root = 'data/imagenet/'  # standard mmpretrain layout: train/<wnid>/*.JPEG
# The student's mean/std; MVP re-normalises the same pixels to CLIP's own
# mean/std inside the teacher (CLIPTargetGenerator.set_input_normalization).
data_preprocessor = dict(
    _delete_=True,
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    # Reliability (README "When things go wrong"): per-sample seeds from
    # SeededSampler make crops and masks after --resume equal an
    # uninterrupted run's; an unreadable image is an error naming the file
    # (on_error='skip' skips it, logged and counted).
    dict(type='ApplySampleSeed'),
    # §3.3.3: "the image resolution of the input is set as 224x224".
    # Scale range and bicubic: BEiT (the paper is silent).
    # RandomResizedCropFromFile = CheckedLoadImageFromFile + mmpretrain's
    # RandomResizedCrop (same boxes, same RNG draws), fast: JPEG decoded at
    # 1/2-1/8 scale when the crop is downscaled that much anyway, Pillow's
    # bicubic computed by torch. exact=True: full-resolution decoding and
    # Pillow, bit for bit the two stock transforms (docs/
    # gpu_and_data_pipeline.md: speed, PSNR bound).
    dict(
        type='RandomResizedCropFromFile',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        interpolation='bicubic',
        backend='pillow',
        exact=False,
        on_error='raise'),
    # BEiT's colour jitter (microsoft/unilm@768a3c8 beit/datasets.py:34,
    # ColorJitter(0.4, 0.4, 0.4) in the transform common to the student and
    # the tokenizer; mmpretrain's BEiT base config too): the teacher sees the
    # jittered pixels, as BEiT's tokenizer does. Ours: applied to the decoded
    # crop rather than the whole image before it, so the fast crop keeps
    # decoding at reduced scale. Brightness and saturation are per-pixel, so
    # they commute with the crop (up to uint8 rounding and bicubic overshoot
    # clipping); contrast blends with the mean grey of the crop instead of
    # the whole image. Factors are drawn from numpy, which ApplySampleSeed
    # seeds per sample: same jitter after --resume.
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4,
         hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # §3.3.3: "Blockwise Masking scheme is employed to mask 75 visual tokens
    # as BEIT"; min block 16 patches and aspect 0.3..1/0.3: BEiT.
    dict(
        type='BlockwiseMaskGenerator',
        input_size=14,
        num_masking_patches=75,
        min_num_patches=16,
        min_aspect=0.3),
    dict(type='PackInputs')
]
# 8 GPUs x 256 = 2048 total batch: BEiT's (the paper gives no batch size).
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    # Re-stated without the `_scope_` key that `mmpretrain::` bases add,
    # which mmengine would pass on to the function.
    collate_fn=dict(_delete_=True, type='default_collate'),
    sampler=dict(type='SeededSampler', shuffle=True),
    dataset=dict(
        data_root=data_root, split='train', ann_file='',
        pipeline=train_pipeline))

# `tools/test.py CONFIG CKPT`: student-teacher cosine (CLS, masked, visible
# patches) on the ImageNet val split (val/ + meta/val.txt), centre crops.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='BlockwiseMaskGenerator', input_size=14,
         num_masking_patches=75, min_num_patches=16, min_aspect=0.3),
    dict(type='PackInputs')
]
test_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNet', data_root=data_root, split='val',
                 pipeline=test_pipeline))
test_evaluator = dict(type='MVPAlignmentMetric')
test_cfg = dict()

# ---------------------------------------------------------------- model
model = dict(
    _delete_=True,
    type='MVP',  # the Runner passes it the top-level data_preprocessor
    # §3.3.3: ViT-B/16; BEiT-style student (mask token, shared relative
    # position bias, layer scale 0.1, drop path 0.1: BEiT).
    # FusedBEiTPretrainViT = mmpretrain's BEiTPretrainViT on fused kernels
    # (same maths and checkpoint keys; drop path once per branch as in
    # official BEiT; with_cp=True trades speed for memory).
    backbone=dict(
        type='FusedBEiTPretrainViT',
        arch='base',
        patch_size=16,
        img_size=224,
        drop_path_rate=0.1,
        final_norm=True,
        out_type='raw',
        use_abs_pos_emb=False,
        use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True,
        layer_scale_init_value=0.1,
        # BEiT's trunc_normal_ truncates at +-1 std (microsoft/unilm@768a3c8
        # beit/modeling_pretrain.py:21-22, used at :86-95); mmengine's default
        # bounds (+-2 absolute) do not truncate at std 0.02 and clamp rare
        # draws to +-2.0. cls/mask tokens: FusedBEiTPretrainViT.init_weights.
        init_cfg=[
            dict(type='TruncNormal', std=0.02, a=-0.02, b=0.02,
                 layer='Linear'),
            dict(type='TruncNormal', std=0.02, a=-0.02, b=0.02,
                 layer='Conv2d'),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
        ]),
    # §3.4: "only one fully-connected layer" into CLIP's space; its in/out
    # widths are filled from the backbone and the teacher.
    # Eq. 9 averages over CLS and all M patches: patches='all'.
    head=dict(type='MVPHead', loss=dict(type='MVPLoss', patches='all')),
    # §3.3.3: "the vision branch with ViT-Base/16 backbone of CLIP", frozen.
    # OpenAI's CLIP weights need QuickGELU. Offline: set pretrained to the
    # path of a local checkpoint file (see README).
    target_generator=dict(
        type='CLIPTargetGenerator',
        model_name='ViT-B-16-quickgelu',
        pretrained='openai'))

# ---------------------------------------------------------------- schedule
# §3.3.3: "AdamW optimizer ... initial learning rate and weight decay are set
# as 1.5e-3 and 5e-2". betas, grad clip 3.0, fp16 AMP with dynamic loss scale
# come from the BEiT base (AmpOptimWrapper; tools/train.py switches to fp32 on
# a machine with no GPU). No weight decay, as official BEiT: 1-D parameters
# (norms, q/v biases, layer-scale gamma), biases, pos_embed and cls_token
# (microsoft/unilm@768a3c8 beit/optim_factory.py:65,
# beit/modeling_pretrain.py:100-101); mask_token and the relative position
# bias table decay, as in BEiT.
# fused=True: PyTorch's fused AdamW kernel, the same update in one pass per
# tensor (CUDA; CPU from torch 2.4, where AdamW otherwise runs a per-tensor
# loop of small ops; tools/train.py drops it where neither is available).
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.999),
                   weight_decay=0.05, fused=True),
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            'q_bias': dict(decay_mult=0.0),
            'v_bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
            '.gamma': dict(decay_mult=0.0),
        }))
# §3.3.3: "a cosine decay learning rate scheduler"; 10 warm-up epochs and
# eta_min 1e-5: BEiT.
max_epochs = 300  # §3.3.3: "pre-trained on ImageNet-1K lasting for 300 epochs"
warmup_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True)
]
# mmengine's epoch loop, except that --resume from a checkpoint taken inside
# an epoch continues it at the next batch (the sampler skips the rest).
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
# Checkpoints are written atomically (a killed save never becomes the one
# --resume picks); model randomness is re-seeded per iteration; a NaN/Inf
# loss or gradient norm stops the run, and so do NaN/Inf or exploded weights
# before a save (AMP: steps with non-finite gradients are skipped and
# counted); a --resume checkpoint that does not match the model, or holds
# NaN/Inf, is an error. A second training run in the same work dir stops at
# once (tools/train.py locks it before building anything; this hook covers
# mmpretrain's own tools/train.py). Cluster jobs (docs/cluster.md): a
# checkpoint every 30 minutes of wall time inside the epochs
# (timed_iter_N.pth, the last 2 kept); SIGTERM / SIGUSR1 (a time limit,
# pre-emption) finish the iteration, save it and exit with code 75.
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                    max_keep_ckpts=3),
    # with gradient accumulation, one lr per optimizer step: the
    # unaccumulated run's (docs/cluster.md)
    param_scheduler=dict(type='OptimizerStepParamSchedulerHook'))
custom_hooks = [
    dict(type='IterationSeedHook'),
    dict(type='NonFiniteGuardHook'),
    dict(type='StrictCheckpointLoadHook'),
    dict(type='WorkDirLockHook'),
    dict(type='TimedCheckpointHook', interval_minutes=30, max_keep_ckpts=2),
    dict(type='SaveOnSignalHook'),
]
# k-NN monitor (DINO's weighted k-NN top-1/top-5 of the student's CLS and mean
# patch token, docs/knn_monitor.md): off, as it needs labelled images. One
# entry turns it on, e.g. in a config with this one as _base_ (memory: 1 in
# 10 train images, `awk 'NR % 10 == 1' meta/train.txt > meta/train_knn.txt`):
# custom_hooks = _base_.custom_hooks + [dict(type='KNNMonitorHook',
#     memory=dict(data_root='data/imagenet', data_prefix='train',
#                 ann_file='meta/train_knn.txt'),
#     query=dict(data_root='data/imagenet', data_prefix='val',
#                ann_file='meta/val.txt'))]
randomness = dict(seed=0, diff_rank_seed=True)
# Every student parameter gets a gradient from Eq. 9 (the teacher has none).
find_unused_parameters = False
# lr 1.5e-3 is for a total batch of 2048; `--auto-scale-lr` rescales it
# linearly to the actual total batch (lr = 1.5e-3 * batch / 2048), counting
# accumulated batches (`--accumulate N`): EffectiveBatchRunner, which also
# logs the effective batch and the lr as training starts.
auto_scale_lr = dict(base_batch_size=2048, enable=False)
runner_type = 'EffectiveBatchRunner'
