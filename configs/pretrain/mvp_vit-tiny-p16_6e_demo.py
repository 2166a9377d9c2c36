# The README's first command (tools/demo.py): MVP pre-training end to end in
# under 2 minutes on 2 CPU cores. The paper config shrunk, nothing else: the
# algorithm, the CLIP ViT-B/16 teacher at 224 px, the training pipeline
# (per-sample seeds, checked image loading, crops, flips, 75 blockwise-masked
# patches), the seeded sampler, the hooks and the optimizer are inherited
# from mvp_vit-b16_300e_in1k.py. Shrunk: the student (4-block ViT-Ti), the
# data (40 crops of 5 real photographs), the batch (8), the schedule (6
# epochs of 5 iterations); added: the held-out alignment every epoch and the
# k-NN accuracy on labelled photos every 3 epochs.
_base_ = './mvp_vit-b16_300e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

# tools/demo.py writes this folder from the real photographs that
# scikit-image ships: train/<class>/*.JPEG, 8 random crops of each of 5
# photos (mvp_mm.utils.make_photo_imagenet_folder), val/*.JPEG, 4 other
# photos, held out (mvp_mm.utils.write_photos), and knn/, the k-NN sets.
data_root = 'data/mvp_demo/'
# CustomDataset: ImageNet's folder layout with any number of classes.
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=_base_.train_pipeline))
held_out = dict(
    type='CustomDataset',
    data_root=data_root,
    data_prefix='val',
    with_label=False,
    pipeline=_base_.test_pipeline)
# `tools/test.py CONFIG CKPT`: the alignment on the held-out photos.
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, **held_out))
# The same check while training, every epoch (5 iterations): the curve in
# work_dirs/mvp_demo/curves.png.
custom_hooks = _base_.custom_hooks + [
    dict(
        type='MVPAlignmentHook',
        interval=5,
        dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=held_out)),
    # DINO's weighted k-NN accuracy of the student's CLS / mean patch token
    # after epochs 3 and 6 (docs/knn_monitor.md): real labelled images, the
    # faces and non-faces of scikit-image's lfw_subset (tools/demo.py writes
    # 15 + 15 memory and 10 + 10 query images under knn/, through
    # mvp_mm.utils.make_lfw_imagenet_folders). The third panel of curves.png.
    dict(
        type='KNNMonitorHook',
        interval=3,
        memory=dict(data_root=data_root + 'knn', data_prefix='train'),
        query=dict(data_root=data_root + 'knn', data_prefix='val'),
        num_workers=0)
]

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
# Every iteration's own loss in the log and scalars.json (no running mean);
# a checkpoint every epoch, the last one kept: an interrupted demo resumes
# exactly with `tools/train.py CONFIG --work-dir work_dirs/mvp_demo --resume`.
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=1))
log_processor = dict(window_size=1)
