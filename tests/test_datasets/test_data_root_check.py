"""Data that a config cannot read: every entry point (tools/train.py,
tools/test.py, mmpretrain's and mmseg's own tools) checks the data of the
loops it runs first, and describes the layout of the dataset type the config
reads (ImageNet, CustomDataset, ADE20K)."""
import os
import os.path as osp
import runpy
import sys

import mmpretrain
import mmseg
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image
from tiny import REPO, run_tool, tiny_pretrain_cfg
from tiny_downstream import SEG_UPERNET, tiny_segmentation_cfg

from mvp_mm.datasets import check_dataset_folders, data_root_check
from mvp_mm.utils import make_ade20k_folder, make_imagenet_folder

IMAGENET_CFG = osp.join(REPO, 'configs', 'pretrain',
                        'mvp_vit-b16_300e_in1k.py')
DEMO_CFG = osp.join(REPO, 'configs', 'pretrain', 'mvp_vit-tiny-p16_6e_demo.py')
LAYOUTS = {
    'ImageNet': "ImageNet layout (type='ImageNet'): <data_root>/train/"
    '<wnid>/*.JPEG',
    'CustomDataset': 'CustomDataset layout: <data_root>/<data_prefix>/'
    '<class>/<image>',
    'ADE20K': 'ADE20K layout (ADEChallengeData2016',
}
CONFIGS = {'ImageNet': IMAGENET_CFG, 'CustomDataset': DEMO_CFG,
           'ADE20K': SEG_UPERNET}


def stock_tool(library, name):
    """mmpretrain's / mmseg's own tools, as their wheels ship them."""
    return osp.join(osp.dirname(library.__file__), '.mim', 'tools', name)


def run_script(path, *args):
    old = sys.argv
    sys.argv = [path, *map(str, args)]
    try:
        runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv = old


def write_list(path, lines):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


# ------------------------------------------------------------ by type
def test_imagenet_class_folders_and_val_list(tmp_path):
    root = str(tmp_path)
    make_imagenet_folder(root, 2, 2, 32, split='train')
    datasets = Config.fromfile(IMAGENET_CFG)
    train = dict(datasets.train_dataloader.dataset, data_root=root)
    with pytest.raises(ValueError, match="holds 2 class folders, but "
                       "ImageNet reads 1000 classes.*type='CustomDataset'"):
        check_dataset_folders(train)
    # val/: flat images, labels in meta/val.txt
    os.makedirs(tmp_path / 'val')
    for i in range(3):
        Image.new('RGB', (8, 8)).save(tmp_path / 'val' / f'v{i}.JPEG')
    test = dict(datasets.test_dataloader.dataset, data_root=root)
    with pytest.raises(ValueError, match='holds 0 class folders.*'
                       r'meta/val\.txt'):
        check_dataset_folders(test, 'test_dataloader.dataset')
    write_list(str(tmp_path / 'meta' / 'val.txt'),
               [f'v{i}.JPEG {i}' for i in range(3)])
    check_dataset_folders(test, 'test_dataloader.dataset')


def test_annotation_file_listing_missing_images(tmp_path, monkeypatch,
                                                logged_warnings):
    """Caught at the start, named and counted; each directory is listed
    once, however many lines name it."""
    root = str(tmp_path)
    classes = make_imagenet_folder(root, 2, 4, 32, split='train')
    lines = [f'{c}/{c}_{i:04d}.JPEG {k}' for k, c in enumerate(classes)
             for i in range(4)]
    missing = [f'{classes[1]}/{classes[1]}_{i:04d}.JPEG 1'
               for i in range(4, 10)] + ['n09999999/gone.JPEG 2']
    write_list(str(tmp_path / 'meta' / 'train.txt'), lines + missing)
    listed = []
    listdir = os.listdir
    monkeypatch.setattr(data_root_check.os, 'listdir',
                        lambda path: listed.append(path) or listdir(path))
    dataset = dict(type='CustomDataset', data_root=root, data_prefix='train',
                   ann_file='meta/train.txt')
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_folders(dataset)
    message = str(error.value)
    assert message.startswith('7 of the 15 images listed in')
    assert 'train_dataloader.dataset.ann_file' in message
    for name in missing[:5]:  # the first five are named
        assert osp.join(root, 'train', name.split()[0]) in message
    assert 'n00000001_0009' not in message
    assert LAYOUTS['CustomDataset'] in message
    assert sorted(listed) == sorted(
        osp.join(root, 'train', d) for d in classes + ['n09999999'])
    # A pipeline that skips unreadable (and missing) images: a warning,
    # also through the fast loader that subclasses CheckedLoadImageFromFile.
    for loader in ('CheckedLoadImageFromFile', 'RandomResizedCropFromFile'):
        logged_warnings.clear()
        dataset['pipeline'] = [dict(type=loader, on_error='skip')]
        check_dataset_folders(dataset)
        assert any(r.getMessage().startswith('7 of the 15 images listed')
                   and "skips them (on_error='skip')" in r.getMessage()
                   for r in logged_warnings), loader


def test_ade20k_images_need_their_label_maps(tmp_path):
    root = str(tmp_path)
    make_ade20k_folder(root, num_train=4, num_val=2)
    seg = Config.fromfile(SEG_UPERNET)
    train = dict(seg.train_dataloader.dataset, data_root=root)
    check_dataset_folders(train)
    os.remove(tmp_path / 'annotations' / 'training' / 'ADE_train_00000002.png')
    train = dict(train, data_root=root + '/')  # not the checked config
    with pytest.raises(FileNotFoundError) as error:
        check_dataset_folders(train)
    message = str(error.value)
    assert message.startswith('1 of the 4 label maps of the images in')
    assert 'annotations/training/ADE_train_00000002.png' in message
    assert LAYOUTS['ADE20K'] in message
    # an ann_file (mmseg: names without suffix) listing a missing image
    write_list(str(tmp_path / 'val.txt'), ['ADE_val_00000001', 'ADE_val_9'])
    val = dict(seg.val_dataloader.dataset, data_root=root,
               ann_file='val.txt')
    with pytest.raises(FileNotFoundError,
                       match=r'1 of the 2 images listed in .*val\.txt.*'
                       r'images/validation/ADE_val_9\.jpg'):
        check_dataset_folders(val, 'val_dataloader.dataset')


# ------------------------------------------------------------ entry points
@pytest.fixture
def no_runner(monkeypatch):
    """Fails a test that builds a runner (and its model) before the data
    check."""

    def built(*args, **kwargs):
        raise AssertionError('the runner was built before the data check')

    monkeypatch.setattr(Runner, '__init__', built)


@pytest.mark.parametrize('kind', sorted(CONFIGS))
@pytest.mark.parametrize('tool, loop', [('train.py', 'train'),
                                        ('test.py', 'test')])
def test_our_tools_check_the_data_before_building_anything(
        tmp_path, no_runner, kind, tool, loop):
    checkpoint = tmp_path / 'epoch_1.pth'
    checkpoint.write_bytes(b'')  # test.py only checks that it exists
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as error:
        run_tool(tool, CONFIGS[kind],
                 *([checkpoint] if tool == 'test.py' else []),
                 '--work-dir', tmp_path / 'work', '--cfg-options',
                 f'{loop}_dataloader.dataset.data_root={missing}')
    message = str(error.value)
    assert f"Data root '{missing}' ({loop}_dataloader.dataset.data_root) " \
        'does not exist' in message
    assert LAYOUTS[kind] in message


def test_stock_mmpretrain_test_checks_the_test_data(tmp_path):
    cfg = tiny_pretrain_cfg(str(tmp_path / 'in'), str(tmp_path / 'work'))
    cfg.test_dataloader.dataset = dict(
        type='ImageNet', data_root=str(tmp_path / 'nowhere'), split='val',
        pipeline=cfg.test_dataloader.dataset.pipeline)
    config = str(tmp_path / 'tiny_mvp.py')
    cfg.dump(config)
    with pytest.raises(FileNotFoundError) as error:
        run_script(stock_tool(mmpretrain, 'test.py'), config,
                   tmp_path / 'epoch_1.pth')
    assert 'test_dataloader.dataset.data_root' in str(error.value)
    assert LAYOUTS['ImageNet'] in str(error.value)


def test_stock_mmpretrain_train_checks_the_annotation_file(tmp_path):
    root = str(tmp_path / 'in')
    classes = make_imagenet_folder(root, 2, 2, 32, split='train')
    write_list(osp.join(root, 'meta', 'train.txt'),
               [f'{classes[0]}/{classes[0]}_0000.JPEG 0',
                f'{classes[0]}/absent.JPEG 0'])
    cfg = tiny_pretrain_cfg(root, str(tmp_path / 'work'))
    cfg.train_dataloader.dataset.ann_file = 'meta/train.txt'
    config = str(tmp_path / 'tiny_mvp.py')
    cfg.dump(config)
    with pytest.raises(FileNotFoundError,
                       match=r"1 of the 2 images listed in .*train\.txt' "
                       r'\(train_dataloader\.dataset\.ann_file\).*absent'):
        run_script(stock_tool(mmpretrain, 'train.py'), config)


def test_stock_mmseg_tools_check_train_val_and_test_data(tmp_path):
    root = str(tmp_path / 'ade')
    make_ade20k_folder(root, num_train=2, num_val=2)
    os.remove(osp.join(root, 'annotations', 'validation',
                       'ADE_val_00000001.png'))
    cfg = tiny_segmentation_cfg(SEG_UPERNET, root, str(tmp_path / 'work'),
                                pretrained=str(tmp_path / 'none.pth'))
    config = str(tmp_path / 'tiny_seg.py')
    cfg.dump(config)
    # train: the train data is fine, the run validates: the val data is not
    with pytest.raises(FileNotFoundError) as error:
        run_script(stock_tool(mmseg, 'train.py'), config)
    assert '(val_dataloader.dataset)' in str(error.value)
    assert 'ADE_val_00000001.png' in str(error.value)
    with pytest.raises(FileNotFoundError) as error:
        run_script(stock_tool(mmseg, 'test.py'), config,
                   tmp_path / 'iter_2.pth', '--cfg-options',
                   f'test_dataloader.dataset.data_root={tmp_path}/nowhere')
    assert 'test_dataloader.dataset.data_root' in str(error.value)
    assert LAYOUTS['ADE20K'] in str(error.value)
