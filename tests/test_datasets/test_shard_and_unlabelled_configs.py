"""The shards and unlabelled-collection configs: the paper config with only
the data changed, their data built by the Runner; the data checks
describe a flat folder of images (an unlabelled collection) and bad
shards before anything is built."""
import copy
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from tiny import PRETRAIN_CFG, REPO

from mvp_mm.datasets import check_dataloader_data, check_dataset_folders
from mvp_mm.datasets.shard_writer import convert_to_shards
from mvp_mm.utils import make_imagenet_folder

SHARDS_CFG = osp.join(REPO, 'configs', 'pretrain',
                      'mvp_vit-b16_300e_in1k_shards.py')
UNLABELLED_CFG = osp.join(REPO, 'configs', 'pretrain',
                          'mvp_vit-b16_300e_unlabelled.py')
DEMO_CFG = osp.join(REPO, 'configs', 'pretrain', 'mvp_vit-tiny-p16_6e_demo.py')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Class folders, one of them as a flat folder, and their shards."""
    root = str(tmp_path_factory.mktemp('data'))
    make_imagenet_folder(root, num_classes=2, images_per_class=4,
                         image_size=80)
    shards = osp.join(root, 'shards')
    convert_to_shards(osp.join(root, 'train'), shards, shard_size_mb=0.01)
    return root, shards, osp.join(root, 'train', 'n00000000')


def _without_data(cfg):
    cfg = copy.deepcopy(cfg._cfg_dict.to_dict())
    cfg['train_dataloader'].pop('dataset')
    cfg.pop('data_root')  # the variable; test_dataloader keeps the base's
    return cfg


@pytest.mark.parametrize('config', [SHARDS_CFG, UNLABELLED_CFG],
                         ids=osp.basename)
def test_only_the_training_data_differs_from_the_paper_config(config):
    paper, ours = Config.fromfile(PRETRAIN_CFG), Config.fromfile(config)
    assert ours.custom_imports == dict(imports=['mvp_mm'],
                                       allow_failed_imports=False)
    assert ours.train_dataloader.dataset.pipeline == \
        paper.train_dataloader.dataset.pipeline
    assert _without_data(ours) == _without_data(paper)  # hooks, sampler...


@pytest.mark.parametrize('config', [SHARDS_CFG, UNLABELLED_CFG],
                         ids=osp.basename)
def test_config_loads_its_data_with_the_runner(config, data):
    """The config's train_dataloader, data_root pointed at its kind of data,
    checked and built as tools/train.py does (tests/test_configs.py trains
    every pretrain config tiny)."""
    root, shards, flat = data
    cfg = Config.fromfile(config)
    loader = copy.deepcopy(cfg.train_dataloader)
    kind = loader.dataset.type
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = shards if kind == 'ShardDataset' else flat
    loader.dataset.pipeline[1].scale = 64  # the crop: smaller, faster
    loader.dataset.pipeline[-2].update(input_size=4, num_masking_patches=6,
                                       min_num_patches=2)
    check_dataloader_data(dict(train_dataloader=loader), ['train'])
    init_default_scope('mmpretrain')
    built = Runner.build_dataloader(loader, seed=0)
    assert type(built.sampler).__name__ == 'SeededSampler'
    assert len(built.dataset) == (8 if kind == 'ShardDataset' else 4)
    batch = next(iter(built))
    assert batch['inputs'][0].shape == (3, 64, 64)
    labels = [s.get('gt_label') for s in batch['data_samples']]
    assert all(label is not None for label in labels) == \
        (kind == 'ShardDataset')


def test_flat_folder_read_by_class_is_described_as_unlabelled(
        data, tmp_path, logged_warnings):
    root, _, flat = data
    for config in (PRETRAIN_CFG, DEMO_CFG):  # ImageNet, CustomDataset
        dataset = dict(Config.fromfile(config).train_dataloader.dataset,
                       data_root=osp.dirname(flat),
                       data_prefix=osp.basename(flat))
        dataset.pop('split', None)
        with pytest.raises(ValueError, match=r'holds images .* and no class '
                           r'folders: an unlabelled collection.*'
                           r'mvp_vit-b16_300e_unlabelled\.py.*'
                           r'with_label=False.*Unlabelled layout'):
            check_dataset_folders(dataset)
    check_dataset_folders(dict(  # the unlabelled config reads it
        Config.fromfile(UNLABELLED_CFG).train_dataloader.dataset,
        data_root=flat))
    # Images beside class folders are left out by the folder datasets: said.
    mixed = str(tmp_path / 'mixed')
    make_imagenet_folder(mixed, num_classes=2, images_per_class=1,
                         image_size=32)
    os.rename(osp.join(mixed, 'train', 'n00000000', 'n00000000_0000.JPEG'),
              osp.join(mixed, 'train', 'loose.JPEG'))
    check_dataset_folders(dict(type='CustomDataset', data_root=mixed,
                               data_prefix='train'))
    assert any('loose.JPEG, are in no class folder' in r.getMessage()
               for r in logged_warnings)


def test_shard_data_checks_name_index_and_shards(data, tmp_path,
                                                 logged_warnings):
    _, shards, _ = data
    dataset = dict(Config.fromfile(SHARDS_CFG).train_dataloader.dataset,
                   data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r'Shard index .*shardindex'
                       r'\.json.* \(train_dataloader\.dataset\.ann_file .*'
                       r'does not exist.*make_shards\.py SRC OUT'):
        check_dataset_folders(dataset)
    for name in os.listdir(shards):
        with open(osp.join(shards, name), 'rb') as f, \
                open(tmp_path / name, 'wb') as g:
            g.write(f.read())
    cut = str(tmp_path / 'shard-000001.tar')
    with open(cut, 'r+b') as f:
        f.truncate(3000)
    with pytest.raises(FileNotFoundError, match=rf'1 of the \d+ shards in '
                       rf".*are missing or truncated, e.g. {cut} \(3000 "
                       r'bytes where the index says \d+ bytes\).*make_shards'):
        check_dataset_folders(dataset)
    skipping = copy.deepcopy(dataset)
    skipping['pipeline'][1]['on_error'] = 'skip'
    check_dataset_folders(skipping)
    assert any(cut in r.getMessage() and 'skips their samples' in
               r.getMessage() for r in logged_warnings)
    os.remove(tmp_path / 'shard-000000.members.npy')
    check_dataset_folders(skipping, key='no table')
    assert any('1 of the' in r.getMessage() and 'have no member table'
               in r.getMessage() for r in logged_warnings)
    with open(cut, 'wb') as f:  # larger than indexed: rewritten, not cut
        f.write(bytes(10 ** 5))
    with pytest.raises(ValueError, match=r'do not match the index.*'
                       'make_shards'):
        check_dataset_folders(skipping, key='again')  # not the cached pass
