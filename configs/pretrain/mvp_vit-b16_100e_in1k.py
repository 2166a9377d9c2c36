# MVP ViT-B/16, 100-epoch ablation (paper Table 4: 83.9 top-1, 52.0 mIoU).
# Same recipe as the 300-epoch config; only the length changes.
_base_ = './mvp_vit-b16_300e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

max_epochs = 100  # Table 4
warmup_epochs = 10  # BEiT
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
