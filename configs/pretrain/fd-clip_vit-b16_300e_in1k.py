# FD-CLIP: Feature Distillation of CLIP ViT-B/16 into a ViT-B/16, 300 epochs,
# IN-1K. Wei et al., "Contrastive Learning Rivals Masked Image Modeling in
# Fine-tuning via Feature Distillation" (2022), https://arxiv.org/abs/2205.14141;
# official code https://github.com/SwinTransformer/Feature-Distillation
# (commit 2115145; cited below as FD:<file>:<line>, the pre-training config
# configs/pretrain/fd_pretrain__clip_vit_base__img224__300ep.yaml as FD:yaml).
# Published: 84.9 top-1 after fine-tuning (FD:README.md, ViT-Base / CLIP-Base
# row). See docs/clip_guided_mim.md.
#
# A delta on MVP's config: the same student, CLIP teacher, head and data, with
# four differences. (1) No masking: the student sees the whole image, like the
# teacher. (2) The target is CLIP's per-token feature after ln_post and
# before the projection (768-d), "whitened" by a LayerNorm without affine
# parameters. (3) Smooth-L1 (beta 2) on every token. (4) FD's schedule.
_base_ = './mvp_vit-b16_300e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

# ---------------------------------------------------------------- data
# MVP's pipeline without its mask generator and colour jitter: no masking
# and no jitter (FD:data/data_fd.py:24-39 has neither;
# FD:models/feature_distillation.py:139 encodes the whole image). The
# random resized crop's scale (0.08, 1) (FD:yaml AUG.MIN_SCALE) and aspect
# (3/4, 4/3) (FD:data/data_fd.py:31) are MVP's already (MVP's
# RandomResizedCropFromFile); its interpolation is torchvision's default,
# bilinear (FD:data/data_fd.py:31; MVP/BEiT: bicubic).
# Horizontal flip (FD:data/data_fd.py:32) and ImageNet mean/std
# (FD:data/data_fd.py:34) are MVP's.
train_pipeline = [
    dict(t, interpolation='bilinear')
    if t.type == 'RandomResizedCropFromFile' else t
    for t in _base_.train_pipeline
    if t.type not in ('BlockwiseMaskGenerator', 'ColorJitter')
]
# 8 GPUs x 256 = 2048, as MVP; FD ran 16 GPUs x 128 = 2048 (FD:README.md,
# "nproc_per_node=16 ... --batch-size 128").
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# `tools/test.py`: alignment on whole images (no `masked` score).
test_pipeline = [
    t for t in _base_.test_pipeline if t.type != 'BlockwiseMaskGenerator'
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# ---------------------------------------------------------------- model
model = dict(
    # Drop path 0.2 (FD:yaml MODEL.DROP_PATH_RATE; MVP: 0.1). Shared relative
    # position bias, no absolute position embedding (FD:yaml USE_SHARED_RPB,
    # USE_APE), layer scale 0.1 (FD:config.py:97 INIT_VALUES), q/v biases
    # (FD:config.py:30 VIT_WITHKBIAS False) and a final norm
    # (FD:models/feature_distillation.py:61) are MVP's student already.
    backbone=dict(drop_path_rate=0.2),
    # "Smooth-L1 with beta 2" on every token, CLS included, averaged over all
    # elements (FD:models/feature_distillation.py:127, 164-165). The head is
    # one 1x1 Conv1d = one Linear (FD:models/feature_distillation.py:129-133),
    # MVP's; its 768 outputs are filled from the teacher.
    head=dict(
        loss=dict(type='MVPLoss', patches='all', cls=True,
                  criterion='smooth_l1', beta=2.0)),
    # CLIP ViT-B/16, OpenAI weights (FD:models/feature_distillation.py:100),
    # the last block's tokens through ln_post, not projected
    # (FD:models/feature_distillation.py:152-156, FD:yaml
    # PRED_FEAT_AFTERNORM True; width 768, FD:...feature_distillation.py:125),
    # then "feature whitening" = nn.LayerNorm(768, elementwise_affine=False)
    # (FD:models/feature_distillation.py:128, 162).
    target_generator=dict(features='ln_post', target_norm='layer_norm'))

# ---------------------------------------------------------------- schedule
# FD scales its lr linearly by total batch / 512 (FD:main_fd.py:249-251):
# base 3e-4, warm-up from 5e-7, minimum 5e-6 (FD:yaml TRAIN) -> at 2048:
# 1.2e-3, 2e-6, 2e-5. AdamW betas (0.9, 0.999), eps 1e-8 (FD:config.py:144-
# 146), weight decay 0.05 (FD:yaml) on every weight that is not 1-D, a bias,
# pos_embed or cls_token (FD:optimizer.py:56-57, models/vision_transformer.py
# :357-358): MVP's paramwise_cfg (the shared relative position bias table,
# 2-D, decays in both). Gradient clipping 3.0 (FD:yaml
# CLIP_GRAD) and fp16 AMP (FD:main_fd.py:58) are MVP's.
optim_wrapper = dict(optimizer=dict(lr=1.2e-3))
# 10 warm-up epochs, linear from 2e-6 (start_factor 2e-6 / 1.2e-3), then
# cosine to 2e-5 over the remaining 290, per iteration (FD:yaml EPOCHS,
# WARMUP_EPOCHS; FD:lr_scheduler.py:27-38).
max_epochs = 300
warmup_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=2e-6 / 1.2e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=2e-5, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
