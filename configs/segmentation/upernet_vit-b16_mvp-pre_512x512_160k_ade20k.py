# ADE20K semantic segmentation with UperNet on the MVP ViT-B/16 (paper Tables
# 2-3: 52.4 mIoU). §4.1: "we also follow the most of hyper-parameter settings
# in BEIT": a delta on mmseg's BEiT/MAE ViT-B UperNet recipe at 512 x 512
# (mae-base_upernet_8xb2-amp-160k_ade20k-512x512: UperNet + FCN auxiliary
# head on four ViT levels made multi-scale by Feature2Pyramid, the standard
# ADE20K pipeline, sliding-window test). Paper values cite their line; the
# rest is BEiT's and says so.
#
# The backbone starts from the raw checkpoint MVP pre-training writes:
#   python tools/train.py CONFIG --pretrained work_dirs/.../epoch_300.pth
# or, in mmsegmentation's own tools/train.py,
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# A missing key or a shape mismatch stops the run (MVPBEiT).
_base_ = 'mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

# §4.1: "the resolution of input image is set as 512x512".
crop_size = (512, 512)
model = dict(
    pretrained=None,  # the checkpoint is the backbone's init_cfg
    backbone=dict(
        _delete_=True,
        type='MVPBEiT',
        img_size=crop_size,  # 32 x 32 window: tables resized from 14 x 14
        patch_size=16,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        qv_bias=True,
        init_values=0.1,  # layer scale: loaded from pre-training
        norm_cfg=dict(type='LN', eps=1e-6),  # as the pre-training student
        drop_path_rate=0.1,  # BEiT
        out_indices=[3, 5, 7, 11],  # BEiT: blocks 4, 6, 8, 12
        final_norm=False,
        init_cfg=dict(
            type='Pretrained',
            # the last epoch of configs/pretrain/mvp_vit-b16_300e_in1k.py
            checkpoint='work_dirs/mvp_vit-b16_300e_in1k/epoch_300.pth',
            prefix='backbone.')))
# Inherited: Feature2Pyramid (x4, x2, x1, x0.5), UPerHead (768 channels),
# FCNHead auxiliary loss 0.4 on level 3, 150 classes, slide test 512 / 341.

# §4.1: "AdamW optimizer is applied and the initial learning rate is set as
# 3e-4 for ViT-B/16". Weight decay 0.05, layer-wise lr decay 0.65 over the 12
# blocks, and mixed precision: BEiT / MAE ADE20K (fp32 without a GPU).
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    # mmseg's layer-wise decay for ViTs (it recognises "BEiT" in MVPBEiT).
    constructor='LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(
        decay_type='layer_wise_vit', num_layers=12, decay_rate=0.65))

# §4.1: "The batch size is set as 16, and the models are fine-tuned last for
# 160K steps": 8 GPUs x 2 images (`bash tools/dist_train.sh CONFIG 8`), 160k
# iterations (mmseg's schedule_160k). Warm-up 1500 iterations then linear
# (poly 1.0) decay: BEiT.
train_dataloader = dict(batch_size=2)
# On another total batch, `--auto-scale-lr` rescales the lr linearly.
auto_scale_lr = dict(enable=False, base_batch_size=16)
# `--auto-scale-lr` counts accumulated batches (`--accumulate N`):
# EffectiveBatchRunner, which also logs the effective batch and the lr as
# training starts.
runner_type = 'EffectiveBatchRunner'

# A NaN/Inf loss stops the run, and so do NaN/Inf or exploded weights before
# a checkpoint is saved; a --resume / load_from file with NaN/Inf is refused.
# BEiT trains UperNet without gradient clipping, so no gradient norm is
# checked (AMP: steps with non-finite gradients are skipped and counted).
# One training run per work dir, also with mmseg's tools/train.py. Cluster
# jobs (docs/cluster.md): a checkpoint every 30 minutes of wall time
# (timed_iter_N.pth, the last 2 kept); SIGTERM / SIGUSR1 finish the iteration,
# save it and exit with code 75. The hooks live in mmpretrain's registry,
# hence the scope prefix.
custom_hooks = [
    dict(type='mmpretrain.NonFiniteGuardHook'),
    dict(type='mmpretrain.WorkDirLockHook'),
    dict(type='mmpretrain.TimedCheckpointHook', interval_minutes=30,
         max_keep_ckpts=2),
    dict(type='mmpretrain.SaveOnSignalHook')
]
# Checkpoints are written atomically, as in pre-training: a killed or failed
# save never replaces a good checkpoint (docs/troubleshooting.md).
default_hooks = dict(
    checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'),
    # with gradient accumulation, one lr per optimizer step: the
    # unaccumulated run's (docs/cluster.md)
    param_scheduler=dict(type='mmpretrain.OptimizerStepParamSchedulerHook'))
