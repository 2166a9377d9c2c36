"""Real-photo data sets: ImageNet layout, JPEG files of the asked size,
photo content (not flat synthetic patterns), the same bytes for the same
seed."""
import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from mvp_mm.utils import (HELD_OUT_PHOTOS, load_photos,
                          make_lfw_imagenet_folders,
                          make_photo_imagenet_folder, write_photos)


def _digest(root):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root)
                   for f in fs)
    digest = hashlib.sha256()
    for path in files:
        with open(path, 'rb') as f:
            digest.update(f.read())
    return files, digest.hexdigest()


def test_photo_folder_layout_size_and_determinism(tmp_path):
    classes = make_photo_imagenet_folder(
        str(tmp_path / 'a'), num_classes=3, images_per_class=2,
        image_size=(120, 90), quality=90, split='val', seed=3)
    assert classes == ['n00000000', 'n00000001', 'n00000002']
    files, digest = _digest(tmp_path / 'a')
    assert len(files) == 6
    assert all(f.endswith('.JPEG') and '/val/n0000000' in f for f in files)
    for f in files:
        with Image.open(f) as img:
            assert img.format == 'JPEG' and img.size == (120, 90)
            assert img.mode == 'RGB'
    make_photo_imagenet_folder(
        str(tmp_path / 'b'), num_classes=3, images_per_class=2,
        image_size=(120, 90), quality=90, split='val', seed=3)
    assert _digest(tmp_path / 'b')[1] == digest


def test_photos_are_real_colour_photographs():
    photos = load_photos()
    assert len(photos) >= 6
    for name, photo in photos.items():
        assert photo.dtype == np.uint8 and photo.ndim == 3
        assert photo.shape[2] == 3 and min(photo.shape[:2]) >= 300, name
        # Photo content: many distinct colours and fine detail.
        assert len(np.unique(photo.reshape(-1, 3), axis=0)) > 5000, name
        assert np.abs(np.diff(photo.astype(np.int16), axis=1)).mean() > 2


def test_held_out_photos_are_other_real_photographs(tmp_path):
    """Whole photos, none of the training ones, grey ones as RGB, at the
    asked short side, in the given order."""
    paths = write_photos(str(tmp_path / 'val'), short_side=200)
    assert [p.split('/')[-1] for p in paths] == [
        f'{label}.JPEG' for _, label in HELD_OUT_PHOTOS]
    training = set(load_photos())
    assert not training & {name for name, _ in HELD_OUT_PHOTOS}
    for path, (name, _) in zip(paths, HELD_OUT_PHOTOS):
        photo = load_photos((name, ))[name]
        with Image.open(path) as img:
            assert img.format == 'JPEG' and img.mode == 'RGB'
            assert min(img.size) == 200
            # Whole: the photo's aspect ratio is kept.
            assert img.width / img.height == pytest.approx(
                photo.shape[1] / photo.shape[0], rel=0.01)


def test_lfw_folders_are_labelled_disjoint_face_and_non_face_sets(tmp_path):
    from mmengine.registry import init_default_scope

    from mmpretrain.registry import DATASETS
    import skimage.data
    assert make_lfw_imagenet_folders(str(tmp_path), 3, 2) == [
        'face', 'non_face']
    init_default_scope('mmpretrain')
    images = np.round(skimage.data.lfw_subset() * 255).astype(np.uint8)
    seen = set()
    for split, count in (('train', 3), ('val', 2)):
        dataset = DATASETS.build(dict(type='CustomDataset',
                                      data_root=str(tmp_path),
                                      data_prefix=split))
        assert dataset.CLASSES == ('face', 'non_face')
        assert [dataset.get_data_info(i)['gt_label'] for i in range(
            len(dataset))] == [0] * count + [1] * count
        for i in range(len(dataset)):
            path = dataset.get_data_info(i)['img_path']
            index = int(os.path.basename(path)[:3])
            seen.add(index)
            with Image.open(path) as img:  # lossless: the subset's pixels
                assert np.array_equal(np.asarray(img), images[index])
            # the first 100 images of lfw_subset are faces
            assert (index < 100) == (dataset.get_data_info(i)['gt_label']
                                     == 0)
    assert len(seen) == 10  # no image in both splits
    with pytest.raises(ValueError, match='100 images per class'):
        make_lfw_imagenet_folders(str(tmp_path / 'big'), 90, 20)
