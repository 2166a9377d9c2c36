# MVP ViT-L/16 student, 300 epochs (paper Table 1: 86.3 top-1; Table 3: 54.3
# mIoU). §3.3.3: "whether pre-training the visual model with ViT-Base/16 or
# ViT-Large/16 backbone, the backbone of vision branch in CLIP is always
# selected with ViT-Base/16": only the student changes.
_base_ = './mvp_vit-b16_300e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

model = dict(
    # Drop path 0.1 for ViT-L follows BEiT's ViT-L pre-training; the head's
    # in_channels (1024) is filled from the backbone. Layer scale 1e-5 for
    # large (microsoft/unilm@768a3c8 beit/README.md:120 "0.1 for base, 1e-5 for
    # large"; BEiT v2's large command, beit2/PRETRAINING.md:73).
    backbone=dict(arch='large', drop_path_rate=0.1,
                  layer_scale_init_value=1e-5))
