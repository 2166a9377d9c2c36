# ImageNet-1K fine-tuning of the MVP ViT-L/16 (paper Table 1: 86.3 top-1).
# Same recipe as ViT-B/16; what changes for ViT-L is below.
_base_ = './vit-b16_mvp-pre_100e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.2,  # BEiT / MAE ViT-L fine-tuning
        init_cfg=dict(
            # the last epoch of configs/pretrain/mvp_vit-l16_300e_in1k.py
            checkpoint='work_dirs/mvp_vit-l16_300e_in1k/epoch_300.pth')),
    head=dict(in_channels=1024))

# §4.1: "The initial learning rate is set with ... 1e-3 for ViT-L/16" (at the
# same total batch of 1024). Layer-wise lr decay 0.75: BEiT's ViT-L.
optim_wrapper = dict(
    optimizer=dict(lr=1e-3), paramwise_cfg=dict(layer_decay_rate=0.75))

# §4.1: "50 epochs with 5 warm-up epochs for ViT-L/16".
max_epochs = 50
warmup_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
