# MVP pre-training as mvp_vit-b16_300e_in1k.py, with the training images read
# from WebDataset tar shards instead of 1.28M files: on a cluster's network
# file system, opening ImageNet file by file is what starves the GPUs. Only
# the data changes: the pipeline (per-sample seeds, the fast crop, now from
# each member's bytes, jitter, flip, 75 blockwise masks), SeededSampler, the
# hooks (atomic checkpoints, per-iteration seeds, NaN/Inf guard, strict
# resume), the model and the schedule are the paper config's. Sample i of
# the shards is sample i of data/imagenet/train, so a run reads the same
# crops and masks from either, and --resume is exact (docs/shards.md).
#
# Write the shards once (about 140 GB in ~1 GB shards; resumable):
#   python tools/make_shards.py data/imagenet/train data/imagenet_shards
# (add --ann-file data/imagenet/meta/train.txt if that list exists: the
# folder config then reads it, so the shards must follow its order).
_base_ = './mvp_vit-b16_300e_in1k.py'

custom_imports = dict(imports=['mvp_mm'], allow_failed_imports=False)

# shardindex.json (wids's shard list) beside shard-000000.tar, ...; an
# https:// or s3:// folder works too: wids downloads each shard once into
# cache_dir ($WIDS_CACHE, else /tmp/_wids_cache).
data_root = 'data/imagenet_shards/'
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ShardDataset',
        data_root=data_root,
        ann_file='shardindex.json',
        pipeline=_base_.train_pipeline))
# tools/test.py still reads ImageNet val from data/imagenet/val (the base).
