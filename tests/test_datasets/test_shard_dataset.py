"""ShardDataset: WebDataset tar shards read by index through wids give the
folder dataset's samples (same seeds, crops, masks, labels), in data
workers too; bad shards are clear errors naming shard and member, or are
skipped, logged and counted."""
import copy
import functools
import io
import json
import os
import os.path as osp
import tarfile

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image
from tiny import PRETRAIN_CFG

from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import TRANSFORMS
from mvp_mm.datasets import SeededIndex, SeededSampler, ShardDataset
from mvp_mm.datasets.shard_writer import convert_to_shards
from mvp_mm.utils import make_photo_imagenet_folder

SHARD_MB = 0.2  # two or three 640 x 480 photos a shard


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """Real photos, large enough for the reduced-DCT decode at 224 px, as
    class folders and as their shards."""
    root = str(tmp_path_factory.mktemp('photos'))
    make_photo_imagenet_folder(root, num_classes=3, images_per_class=4,
                               image_size=(640, 480))
    shards = osp.join(root, 'shards')
    convert_to_shards(osp.join(root, 'train'), shards, SHARD_MB)
    return root, shards


@functools.lru_cache()
def _paper_pipeline():
    return Config.fromfile(PRETRAIN_CFG).train_dataloader.dataset.pipeline


def _pipeline():
    """The paper config's training pipeline, unchanged."""
    return copy.deepcopy(_paper_pipeline())


def _same_samples(a, b, epochs=(0, 1)):
    """Every sample SeededSampler draws, from ``a`` and from ``b``."""
    sampler = SeededSampler(a, shuffle=True, seed=3)
    assert len(a) == len(b)
    for epoch in epochs:
        sampler.set_epoch(epoch)
        for index in sampler:
            x, y = a[index], b[SeededIndex(int(index), index.seed)]
            assert torch.equal(x['inputs'], y['inputs']), int(index)
            xs, ys = x['data_samples'], y['data_samples']
            assert torch.equal(xs.mask, ys.mask)
            assert xs.get('gt_label') is None and ys.get('gt_label') is None \
                or torch.equal(xs.gt_label, ys.gt_label)


def test_same_crops_masks_and_labels_as_the_class_folders(photos):
    root, shards = photos
    init_default_scope('mmpretrain')
    folders = CustomDataset(data_root=root, data_prefix='train',
                            pipeline=_pipeline())
    sharded = ShardDataset(data_root=shards, pipeline=_pipeline())
    assert len(sharded.shardlist) >= 4
    assert sharded.metainfo['classes'] == folders.metainfo['classes']
    _same_samples(folders, sharded, epochs=(0, ))
    _same_samples(sharded, folders, epochs=(1, ))
    # The fast crop decodes shard bytes at reduced DCT scale as it does
    # files: same boxes, same pixels.
    crop = TRANSFORMS.build(_pipeline()[1])
    scales = set()
    for i in range(len(folders)):
        np.random.seed(i)
        a = crop(folders.get_data_info(i))
        np.random.seed(i)
        b = crop(sharded.get_data_info(i))
        assert np.array_equal(a['img'], b['img'])
        assert a['decode_scale'] == b['decode_scale']
        scales.add(b['decode_scale'])
    assert scales & {2, 4, 8}


def test_same_samples_as_a_flat_folder_and_an_annotation_list(
        photos, tmp_path):
    root, _ = photos
    init_default_scope('mmpretrain')
    flat = osp.join(root, 'train', 'n00000001')  # images only
    convert_to_shards(flat, str(tmp_path / 'flat'))
    unlabelled = ShardDataset(data_root=str(tmp_path / 'flat'),
                              pipeline=_pipeline())
    assert 'classes' not in unlabelled.metainfo
    _same_samples(
        CustomDataset(data_prefix=flat, with_label=False,
                      pipeline=_pipeline()), unlabelled, epochs=(0, ))
    # An annotation list in its own (unsorted) order maps index i to line i.
    train = osp.join(root, 'train')
    lines = sorted(osp.join(c, f) for c in os.listdir(train)
                   for f in os.listdir(osp.join(train, c)))[::-3]
    ann = str(tmp_path / 'list.txt')
    with open(ann, 'w') as f:
        f.write(''.join(f'{n} {i % 2}\n' for i, n in enumerate(lines)))
    convert_to_shards(train, str(tmp_path / 'ann'), SHARD_MB, ann_file=ann)
    _same_samples(
        CustomDataset(data_prefix=train, ann_file=ann, pipeline=_pipeline()),
        ShardDataset(data_root=str(tmp_path / 'ann'), pipeline=_pipeline()),
        epochs=(0, ))


def test_data_workers_give_the_folder_batches(photos):
    """Two forked data workers over the shards (each opens its own), the
    batches of one in-process folder loader with the same seed."""
    root, shards = photos
    init_default_scope('mmpretrain')
    pipeline = [dict(type='ApplySampleSeed'),
                dict(type='RandomResizedCropFromFile', scale=64,
                     backend='pillow', interpolation='bicubic'),
                dict(type='RandomFlip', prob=0.5),
                dict(type='PackInputs')]
    loaders = []
    for workers, dataset in (
            (0, dict(type='CustomDataset', data_root=root,
                     data_prefix='train')),
            (2, dict(type='ShardDataset', data_root=shards))):
        loaders.append(Runner.build_dataloader(
            dict(batch_size=4, num_workers=workers,
                 sampler=dict(type='SeededSampler', shuffle=True),
                 collate_fn=dict(type='default_collate'),
                 dataset=dict(dataset, pipeline=pipeline)), seed=11))
    folder, sharded = ([b['inputs'] for b in loader] for loader in loaders)
    assert len(folder) == 3
    assert all(torch.equal(a, b) for a, b in zip(folder, sharded))


# ------------------------------------------------------------ bad input
def _crop(on_error='raise'):
    init_default_scope('mmpretrain')
    return TRANSFORMS.build(dict(type='RandomResizedCropFromFile', scale=32,
                                 on_error=on_error))


def _copy_shards(shards, dst):
    os.makedirs(dst)
    for name in os.listdir(shards):
        with open(osp.join(shards, name), 'rb') as f, \
                open(osp.join(dst, name), 'wb') as g:
            g.write(f.read())
    return str(dst)


def _index(folder):
    with open(osp.join(folder, 'shardindex.json')) as f:
        return json.load(f)


def _write_index(folder, index):
    with open(osp.join(folder, 'shardindex.json'), 'w') as f:
        json.dump(index, f)


def test_truncated_shard_names_shard_and_member_or_is_skipped(
        photos, tmp_path, logged_warnings):
    _, shards = photos
    folder = _copy_shards(shards, tmp_path / 'cut')
    first = _index(folder)['shardlist'][0]
    path = osp.join(folder, first['url'])
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:  # in the second image's data
        f.write(data[:len(data) // 2 + 2048])
    dataset = ShardDataset(data_root=folder)
    assert dataset.get_data_info(0)['img_bytes'][:2] == b'\xff\xd8'
    crop = _crop()
    for index in range(1, first['nsamples']):
        info = dataset.get_data_info(index)
        with pytest.raises(ValueError, match=r'Training image member '
                           rf'0+{index}\.\S+ of shard {path} .*'
                           r'(truncated|missing).*make_shards\.py.*'
                           "on_error='skip'"):
            crop(info)
    assert any('is truncated' in r.getMessage() for r in logged_warnings)
    skip = _crop('skip')
    assert skip(dataset.get_data_info(1)) is None
    assert skip.num_skipped == 1
    assert any('Skipped unreadable image member 000000001.jpg of shard'
               in r.getMessage() for r in logged_warnings)
    # The next shard is whole.
    assert crop(dataset.get_data_info(first['nsamples']))['img'].shape == \
        (32, 32, 3)


def _sample_tar(path, members):
    with tarfile.open(path, 'w', format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_missing_or_unreadable_members_and_labels(tmp_path):
    jpeg = io.BytesIO()
    Image.new('RGB', (40, 40), (200, 10, 10)).save(jpeg, 'JPEG')
    folder = str(tmp_path)
    _sample_tar(osp.join(folder, 'a.tar'), [
        ('000000000.jpg', jpeg.getvalue()), ('000000000.cls', b'3'),
        ('000000001.cls', b'1'),  # no image
        ('000000002.jpg', b'not a jpeg' * 10),
        ('000000003.jpg', jpeg.getvalue()), ('000000003.cls', b'x')])
    _write_index(folder, dict(
        wids_version=1, mvp_mm=dict(keys='index'),
        shardlist=[dict(url='a.tar', nsamples=4)]))
    dataset = ShardDataset(data_root=folder)
    crop, skip = _crop(), _crop('skip')
    assert crop(dataset.get_data_info(0))['gt_label'] == 3
    shard = osp.join(folder, 'a.tar')
    for index, problem in ((1, r'000000001\.\* of shard .* is missing: no '
                            r'image member .* among 000000001\.cls'),
                           (2, r'000000002\.jpg of shard .* cannot be '),
                           (3, r"000000003\.jpg of shard .* unreadable "
                            r"label: 000000003\.cls holds b'x'")):
        with pytest.raises(ValueError, match=problem) as error:
            crop(dataset.get_data_info(index))
        assert shard in str(error.value)
        assert skip(dataset.get_data_info(index)) is None
    assert skip.num_skipped == 3


def test_index_that_does_not_match_the_tars_is_always_an_error(
        photos, tmp_path):
    _, shards = photos
    folder = _copy_shards(shards, tmp_path / 'x')
    index = _index(folder)
    a, b = index['shardlist'][:2]
    a['nsamples'] += 1  # the same total, split otherwise
    b['nsamples'] -= 1
    _write_index(folder, index)
    with pytest.raises(ValueError, match=rf'Shard .*{a["url"]} does not '
                       rf'match the index .*shardindex.json: it holds '
                       rf'{a["nsamples"] - 1} samples in {a["filesize"]} '
                       rf'bytes, the index says {a["nsamples"]} .*'
                       r"make_shards.*on_error='skip' does not apply"):
        ShardDataset(data_root=folder).get_data_info(0)
    # Counts and sizes right, shards listed out of order: the keys (the
    # dataset indices) give it away.
    a['nsamples'] -= 1
    b['nsamples'] += 1
    index['shardlist'] = [b, a] + index['shardlist'][2:]
    _write_index(folder, index)
    with pytest.raises(ValueError, match=rf'Shard .*{b["url"]} does not '
                       r"match .* its sample 0 has key '0+[1-9]' where "
                       r"dataset index 0 needs '000000000'"):
        ShardDataset(data_root=folder).get_data_info(0)


def test_missing_or_empty_index(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'shardindex\.json.* does '
                       r'not exist.*make_shards\.py SRC OUT'):
        ShardDataset(data_root=str(tmp_path))
    _write_index(str(tmp_path), dict(wids_version=1, shardlist=[]))
    with pytest.raises(ValueError, match='lists no shards'):
        ShardDataset(data_root=str(tmp_path))
    # A listed shard file that is missing: named, raised or skipped.
    _write_index(str(tmp_path), dict(
        wids_version=1, shardlist=[dict(url='gone.tar', nsamples=2,
                                        filesize=10240)]))
    info = ShardDataset(data_root=str(tmp_path)).get_data_info(1)
    with pytest.raises(ValueError, match=r'gone\.tar .*cannot be opened.*'
                       r'does not exist'):
        _crop()(info)
    assert _crop('skip')(info) is None


def test_member_tables_open_shards_without_scanning_them(
        photos, tmp_path, monkeypatch):
    """Random access over every shard stays cheap: a shard opens from its
    member table, not from wids's scan of the tar; a table that does not
    describe the tar is an index mismatch."""
    from wids.wids_mmtar import MMIndexedTar

    _, shards = photos
    folder = _copy_shards(shards, tmp_path / 'x')

    def no_scan(self):
        raise AssertionError('scanned the tar')

    monkeypatch.setattr(MMIndexedTar, '_build_index', no_scan)
    dataset = ShardDataset(data_root=folder, open_shards=1)  # re-opens
    for index in np.random.default_rng(0).permutation(len(dataset)):
        assert dataset.get_data_info(int(index))['img_bytes'][:2] == \
            b'\xff\xd8'
    table = osp.join(folder, 'shard-000001.members.npy')
    members = np.load(table)
    members[2:, 0] += 512  # stale offsets
    np.save(table, members)
    first = _index(folder)['shardlist'][0]['nsamples']
    with pytest.raises(ValueError, match=r'shard-000001\.tar does not match '
                       r'the index .* sample 1: no member header at byte'):
        ShardDataset(data_root=folder).get_data_info(first + 1)
