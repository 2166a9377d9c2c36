# ADE20K UperNet on the MVP ViT-L/16 (paper Table 3: 54.3 mIoU). Same recipe
# as ViT-B/16; what changes for ViT-L is below.
_base_ = './upernet_vit-b16_mvp-pre_512x512_160k_ade20k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        drop_path_rate=0.2,  # BEiT ViT-L ADE20K
        out_indices=[7, 11, 15, 23],  # BEiT ViT-L: blocks 8, 12, 16, 24
        init_cfg=dict(
            # the last epoch of configs/pretrain/mvp_vit-l16_300e_in1k.py
            checkpoint='work_dirs/mvp_vit-l16_300e_in1k/epoch_300.pth')),
    neck=dict(embed_dim=1024),
    # Head widths: mmseg's BEiT ViT-L UperNet.
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=1024),
    auxiliary_head=dict(in_channels=1024))

# §4.1: "the initial learning rate is set as ... 2e-5 for ViT-L/16".
# Layer-wise lr decay 0.95 over 24 blocks: BEiT ViT-L ADE20K.
optim_wrapper = dict(
    optimizer=dict(lr=2e-5),
    paramwise_cfg=dict(num_layers=24, decay_rate=0.95))

# 3000 warm-up iterations: BEiT ViT-L ADE20K (mmseg's beit-large config).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=3000),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=3000, end=160000,
         by_epoch=False)
]
