"""The fast training pipeline against the exact one: same crop boxes, same
masks and flips, pixels within a PSNR bound; the exact path is the stock
transforms bit for bit; bad files are still named or skipped. (The data
benchmark's smoke test: tests/test_tools/test_gpu_check.py.)"""
import copy
import math
import os.path as osp
import random
from glob import glob

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image
from tiny import PRETRAIN_CFG

from mmpretrain.registry import TRANSFORMS
from mvp_mm.datasets import SeededIndex
from mvp_mm.utils import make_photo_imagenet_folder, seed_cpu_rngs

from psnr_bounds import (PSNR_FULL_DECODE, PSNR_REDUCED_224,
                         PSNR_REDUCED_SMALL)


def _crop(**kwargs):
    cfg = dict(type='RandomResizedCropFromFile', scale=64,
               interpolation='bicubic', backend='pillow')
    return TRANSFORMS.build(dict(cfg, **kwargs))


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64))**2)
    return math.inf if mse == 0 else 10 * math.log10(255.**2 / mse)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """ImageNet-like JPEGs: 500 x 375, quality 90, real photo content."""
    root = str(tmp_path_factory.mktemp('photos'))
    make_photo_imagenet_folder(root, num_classes=6, images_per_class=3)
    return sorted(glob(osp.join(root, 'train', '*', '*.JPEG')))


def test_exact_path_is_the_stock_transforms_bit_for_bit(photos):
    init_default_scope('mmpretrain')
    exact = _crop(exact=True)
    load = TRANSFORMS.build(dict(type='CheckedLoadImageFromFile'))
    crop = TRANSFORMS.build(dict(type='RandomResizedCrop', scale=64,
                                 interpolation='bicubic', backend='pillow'))
    for seed, path in enumerate(photos):
        seed_cpu_rngs(seed)
        ours = exact(dict(img_path=path))
        after_ours = np.random.rand()
        seed_cpu_rngs(seed)
        stock = crop(load(dict(img_path=path)))
        assert np.random.rand() == after_ours  # the same numbers drawn
        assert np.array_equal(ours['img'], stock['img'])
        assert ours['img_shape'] == stock['img_shape'] == (64, 64, 3)
        assert ours['ori_shape'] == (375, 500)


def _config_pipeline(scale: int, exact: bool) -> Compose:
    """The pretrain config's train pipeline at ``scale`` px, without
    PackInputs (to see boxes and scales)."""
    pipeline = copy.deepcopy(
        Config.fromfile(PRETRAIN_CFG).train_dataloader.dataset.pipeline)
    crop = next(t for t in pipeline
                if t['type'] == 'RandomResizedCropFromFile')
    crop.update(scale=scale, exact=exact)
    assert pipeline[-1]['type'] == 'PackInputs'
    init_default_scope('mmpretrain')
    return Compose(pipeline[:-1])


def _fast_vs_exact(files, scale):
    """The config's pipeline, fast and exact, on the same seeded samples:
    ``[(psnr, decode_scale)]``; asserts boxes, flips and masks equal."""
    fast, exact = _config_pipeline(scale, False), _config_pipeline(
        scale, True)
    results = []
    for index, path in enumerate(files):
        sample = dict(img_path=path, sample_idx=SeededIndex(index, 7 + index))
        a, b = fast(dict(sample)), exact(dict(sample))
        again = fast(dict(sample))  # deterministic per seed
        assert np.array_equal(again['img'], a['img'])
        assert np.array_equal(a['crop_bbox'], b['crop_bbox'])
        assert a['flip'] == b['flip']
        assert np.array_equal(a['mask'], b['mask'])
        assert a['img'].shape == b['img'].shape == (scale, scale, 3)
        # PackInputs warns on (and torch cannot own) read-only arrays
        assert a['img'].flags.writeable
        assert b['decode_scale'] == 1
        results.append((_psnr(a['img'], b['img']), a['decode_scale']))
    return results


def test_fast_path_same_boxes_masks_and_psnr_bound(photos):
    results = _fast_vs_exact(photos, 96)
    full = [p for p, s in results if s == 1]
    reduced = [p for p, s in results if s > 1]
    # 96 px crops of 500 x 375 files: both paths occur
    assert full and reduced
    assert min(full) >= PSNR_FULL_DECODE
    assert min(reduced) >= PSNR_REDUCED_SMALL


def test_fast_path_psnr_bound_at_224_on_large_photos(tmp_path):
    make_photo_imagenet_folder(str(tmp_path), num_classes=6,
                               images_per_class=2, image_size=(1000, 750))
    files = sorted(glob(osp.join(str(tmp_path), 'train', '*', '*.JPEG')))
    results = _fast_vs_exact(files, 224)
    assert any(s > 1 for _, s in results)
    for value, scale in results:
        assert value >= (PSNR_FULL_DECODE if scale == 1 else
                         PSNR_REDUCED_224), (value, scale)


@pytest.mark.parametrize('orientation', range(1, 9))
def test_fast_path_follows_exif_orientation(photos, tmp_path, orientation):
    """EXIF orientations (mirrored, rotated, transposed): the box is drawn
    in the upright image, as cv2 decodes it, and the reduced decode's
    pixel grid is aligned with it."""
    path = str(tmp_path / 'oriented.JPEG')
    with Image.open(photos[0]) as img:
        exif = img.getexif()
        exif[0x0112] = orientation
        img.save(path, quality=90, exif=exif)
    fast, exact = _crop(scale=96), _crop(scale=96, exact=True)
    upright = (500, 375) if orientation >= 5 else (375, 500)
    scales = set()
    for seed in range(6):
        seed_cpu_rngs(seed)
        a = fast(dict(img_path=path))
        seed_cpu_rngs(seed)
        b = exact(dict(img_path=path))
        assert a['ori_shape'] == b['ori_shape'] == upright
        assert np.array_equal(a['crop_bbox'], b['crop_bbox'])
        scales.add(a['decode_scale'])
        bound = PSNR_FULL_DECODE if a['decode_scale'] == 1 else \
            PSNR_REDUCED_SMALL
        assert _psnr(a['img'], b['img']) >= bound, a['decode_scale']
    assert 2 in scales


def test_fast_path_names_or_skips_bad_files(photos, tmp_path):
    with open(photos[0], 'rb') as f:
        data = f.read()
    bad = dict(garbage=b'not an image at all' * 20, empty=b'',
               truncated=data[:len(data) // 2])
    paths = []
    for name, content in bad.items():
        paths.append(str(tmp_path / f'{name}.JPEG'))
        with open(paths[-1], 'wb') as f:
            f.write(content)
    paths.append(str(tmp_path / 'missing.JPEG'))
    crop = _crop()
    for path in paths:
        with pytest.raises(ValueError, match='on_error=.skip. on '
                           'RandomResizedCropFromFile') as error:
            crop(dict(img_path=path))
        assert path in str(error.value)
    skip = _crop(on_error='skip')
    assert all(skip(dict(img_path=path)) is None for path in paths)
    assert skip.num_skipped == len(paths)
    assert skip(dict(img_path=photos[0]))['img'].shape == (64, 64, 3)


def test_pretrain_config_uses_the_fast_crop_on_bgr():
    cfg = Config.fromfile(PRETRAIN_CFG)
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert types[:2] == ['ApplySampleSeed', 'RandomResizedCropFromFile']
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop['exact'] is False and crop['backend'] == 'pillow'
    # BGR like mmcv's loader (the test pipeline's): the preprocessor flips
    assert cfg.data_preprocessor.to_rgb is True


def test_sample_seed_gives_the_streams_of_torch_manual_seed():
    """ApplySampleSeed seeds torch's CPU generator only (cheap), which is
    the stream torch.manual_seed gives it."""
    seed_cpu_rngs(123)
    ours = (torch.rand(3), np.random.rand(), random.random())
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    theirs = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(ours[0], theirs[0]) and ours[1:] == theirs[1:]
