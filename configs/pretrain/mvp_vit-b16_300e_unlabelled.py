# MVP pre-training as mvp_vit-b16_300e_in1k.py on a collection of images
# with no labels and no class folders (photos from a crawl, a camera, a
# CC3M/LAION-style image set): MVP's loss needs only the images and CLIP's
# features of them. Only the data changes: the pipeline, SeededSampler, the
# hooks (atomic checkpoints, per-iteration seeds, NaN/Inf guard, strict
# resume), the model and the schedule are the paper config's.
#
# data/images/ holds the images directly or in sub-folders of any depth
# (.jpg .jpeg .png .ppm .bmp .pgm .tif), read in sorted path order
# (mmpretrain's CustomDataset with with_label=False). The same collection as
# tar shards: `python tools/make_shards.py data/images data/image_shards`
# and the shards config with data_root='data/image_shards/'. lr 1.5e-3 is for
# a total batch of 2048 (--auto-scale-lr for another); epochs are counted
# over this collection, so set max_epochs (and the warm-up) for its size.
_base_ = './mvp_vit-b16_300e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

data_root = 'data/images/'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        with_label=False,
        pipeline=_base_.train_pipeline))
# tools/test.py still reads ImageNet val from data/imagenet/val (the base).
