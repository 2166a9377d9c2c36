# ImageNet-1K linear probing of the frozen MVP ViT-B/16 (paper §4.2: 75.4
# top-1). The paper gives no recipe: this follows MAE's linear probing
# (mmpretrain's mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py:
# CLS token of the final norm, BatchNorm without affine before the linear
# classifier, LARS lr 6.4 at a total batch of 16384, no weight decay, 10
# warm-up epochs, cosine), run for 100 epochs as MILAN (CLIP-target MIM,
# mmpretrain's milan/benchmarks/...linear-coslr-100e_in1k.py) and DINO.
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='MVPBEiTViT',
        arch='base',
        img_size=224,
        patch_size=16,
        # The pre-trained network as it is: relative position tables (one
        # per layer, copies of the shared one), layer scale and the final
        # norm all loaded, every block frozen.
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        layer_scale_init_value=0.1,
        final_norm=True,
        out_type='cls_token',
        frozen_stages=12,
        init_cfg=dict(
            type='Pretrained',
            # the last epoch of configs/pretrain/mvp_vit-b16_300e_in1k.py
            checkpoint='work_dirs/mvp_vit-b16_300e_in1k/epoch_300.pth',
            prefix='backbone.')))

# Per-sample seeds, as in pre-training: a sample's augmentation is a function
# of (seed, epoch, index), so a resumed run draws the same crops and flips as
# an uninterrupted one.
train_pipeline = [dict(type='ApplySampleSeed'), *_base_.train_pipeline]
train_dataloader = dict(
    sampler=dict(type='SeededSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))

auto_scale_lr = dict(base_batch_size=16384)  # MAE: 8 GPUs x 2048
# `--auto-scale-lr` counts accumulated batches (`--accumulate N`):
# EffectiveBatchRunner, which also logs the effective batch and the lr as
# training starts.
runner_type = 'EffectiveBatchRunner'
# A NaN/Inf loss stops the run, and so do NaN/Inf or exploded weights before
# a checkpoint is saved; a --resume / load_from file with NaN/Inf is refused.
# No gradient clipping (MAE's recipe), so no gradient norm is checked.
# Any randomness of the model is re-seeded per iteration, the data's per
# sample (above): --resume is exact. One training run per work dir, also
# with mmpretrain's tools/train.py. Cluster jobs (docs/cluster.md): a
# checkpoint every 30 minutes of wall time (timed_iter_N.pth, the last 2
# kept); SIGTERM / SIGUSR1 finish the iteration, save it and exit with code 75.
custom_hooks = [
    dict(type='IterationSeedHook'),
    dict(type='NonFiniteGuardHook'),
    dict(type='WorkDirLockHook'),
    dict(type='TimedCheckpointHook', interval_minutes=30, max_keep_ckpts=2),
    dict(type='SaveOnSignalHook')
]
# Checkpoints are written atomically, as in pre-training: a killed or failed
# save never replaces a good checkpoint (docs/troubleshooting.md).
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook'),
    # with gradient accumulation, one lr per optimizer step: the
    # unaccumulated run's (docs/cluster.md)
    param_scheduler=dict(type='OptimizerStepParamSchedulerHook'))
max_epochs = 100
warmup_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True)
]
# mmengine's epoch loop, except that --resume from a checkpoint taken inside
# an epoch continues it at the next batch (the sampler skips the rest).
train_cfg = dict(
    _delete_=True, type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
