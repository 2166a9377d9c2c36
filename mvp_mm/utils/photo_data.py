"""Data sets of real photographs in ImageNet's folder layout, offline.

scikit-image ships a handful of real photographs inside its wheel
(``skimage.data``); nothing is downloaded. Random crops of them, re-encoded
as JPEG, give ImageNet-like files (photo content, ImageNet-like size and
quality) for the demo, the analysis examples and the data-pipeline benchmark;
other photographs, written whole, are the demo's held-out images. Its
``lfw_subset`` (faces and non-faces from Labeled Faces in the Wild) is a
small labelled set for k-NN monitoring.
"""
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

#: Colour photographs in scikit-image's wheel: (name, what it shows).
PHOTOS = (
    ('astronaut', 'astronaut'),
    ('chelsea', 'cat'),
    ('coffee', 'coffee cup'),
    ('rocket', 'rocket'),
    ('hubble_deep_field', 'galaxies'),
    ('immunohistochemistry', 'tissue'),
)

#: Other real photographs in scikit-image's wheel, none of them in
#: :data:`PHOTOS`: held-out images (e.g. the demo's evaluation and attention
#: maps) that a model trained on :data:`PHOTOS` crops has never seen.
#: Grey photographs are given three equal channels.
HELD_OUT_PHOTOS = (
    ('stereo_motorcycle', 'motorcycle'),
    ('camera', 'cameraman'),
    ('coins', 'coins'),
    ('retina', 'retina'),
)


def load_photos(names: Tuple[str, ...] = tuple(n for n, _ in PHOTOS)
                ) -> Dict[str, np.ndarray]:
    """scikit-image's sample photographs as RGB arrays.

    Args:
        names (tuple[str]): ``skimage.data`` function names (a stereo pair
            gives its left view). Defaults to the colour photographs in
            :data:`PHOTOS`.

    Returns:
        dict: ``{name: uint8 array [H, W, 3]}``, in the order given.
    """
    import skimage.data
    photos = {}
    for name in names:
        photo = getattr(skimage.data, name)()
        if isinstance(photo, tuple):  # stereo_motorcycle: (left, right, disp)
            photo = photo[0]
        if photo.ndim == 2:  # grey
            photo = np.repeat(photo[..., None], 3, axis=2)
        photos[name] = photo[..., :3]
    return photos


def random_photo_crop(photo: np.ndarray, rng: np.random.Generator,
                      size: Tuple[int, int]) -> Image.Image:
    """A random crop of ``photo`` (30-100% of its area, aspect 3/4-4/3,
    flipped at random), resized to ``size`` = ``(width, height)``."""
    height, width = photo.shape[:2]
    area = rng.uniform(0.3, 1.0) * height * width
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w = int(min(width, round(np.sqrt(area * aspect))))
    crop_h = int(min(height, round(np.sqrt(area / aspect))))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    crop = photo[top:top + crop_h, left:left + crop_w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return Image.fromarray(np.ascontiguousarray(crop)).resize(
        size, Image.BICUBIC)


def make_photo_imagenet_folder(root: str,
                               num_classes: int = 4,
                               images_per_class: int = 16,
                               image_size: Tuple[int, int] = (500, 375),
                               quality: int = 90,
                               split: str = 'train',
                               seed: int = 0) -> List[str]:
    """Write ``root/<split>/<class>/<i>.JPEG`` from real photographs.

    Class ``k`` holds random crops of photo ``k % len(PHOTOS)`` (see
    :data:`PHOTOS`), each resized to ``image_size`` and saved as a JPEG of
    the given quality: ImageNet's layout, and its typical file (about
    500 x 375, quality ~90, photo content).

    Args:
        root (str): Dataset root (e.g. ``data/mvp_demo``).
        num_classes (int): Number of class folders. Defaults to 4.
        images_per_class (int): Images per class. Defaults to 16.
        image_size (tuple[int, int]): ``(width, height)`` of every image.
            Defaults to ``(500, 375)``.
        quality (int): JPEG quality. Defaults to 90.
        split (str): Sub-folder, ``'train'`` or ``'val'``. Defaults to
            ``'train'``.
        seed (int): RNG seed; the same call writes the same files. Defaults
            to 0.

    Returns:
        List[str]: The class folder names, sorted.
    """
    rng = np.random.default_rng(seed)
    photos = list(load_photos().values())
    classes = [f'n{index:08d}' for index in range(num_classes)]
    for index, name in enumerate(classes):
        folder = osp.join(root, split, name)
        os.makedirs(folder, exist_ok=True)
        photo = photos[index % len(photos)]
        for i in range(images_per_class):
            random_photo_crop(photo, rng, image_size).save(
                osp.join(folder, f'{name}_{i:04d}.JPEG'), quality=quality)
    return classes


def write_photos(folder: str,
                 photos: Tuple[Tuple[str, str], ...] = HELD_OUT_PHOTOS,
                 short_side: int = 375,
                 quality: int = 90) -> List[str]:
    """Write whole photographs as ``folder/<label>.JPEG``, one file each.

    Args:
        folder (str): Output folder (created).
        photos (tuple): ``(skimage.data name, label)`` pairs. Defaults to
            :data:`HELD_OUT_PHOTOS`.
        short_side (int): The shorter side of every file, in pixels (aspect
            kept, bicubic). Defaults to 375 (ImageNet's typical size).
        quality (int): JPEG quality. Defaults to 90.

    Returns:
        List[str]: The written paths, in the order of ``photos``.
    """
    os.makedirs(folder, exist_ok=True)
    arrays = load_photos(tuple(name for name, _ in photos))
    paths = []
    for name, label in photos:
        image = Image.fromarray(arrays[name])
        scale = short_side / min(image.size)
        image = image.resize((round(image.width * scale),
                              round(image.height * scale)), Image.BICUBIC)
        path = osp.join(folder, f'{label}.JPEG')
        image.save(path, quality=quality)
        paths.append(path)
    return paths


#: The classes of scikit-image's ``lfw_subset``, in its order (100 each).
LFW_CLASSES = ('face', 'non_face')


def make_lfw_imagenet_folders(root: str,
                              train_per_class: int = 20,
                              val_per_class: int = 10) -> List[str]:
    """Write scikit-image's ``lfw_subset`` as labelled ImageNet-style folders.

    ``root/train/<class>/<i>.png`` and ``root/val/<class>/<i>.png``, disjoint
    images of the two classes of :data:`LFW_CLASSES` (25 x 25 px, grey): a
    real labelled memory set and query set for
    :class:`~mvp_mm.engine.KNNMonitorHook`, offline (the array ships in the
    wheel). The first images of each class go to ``train``, the next ones
    to ``val``.

    Args:
        root (str): Output root (created).
        train_per_class (int): Images per class in ``train``. Defaults to
            20.
        val_per_class (int): Images per class in ``val``. Defaults to 10.

    Returns:
        List[str]: The class folder names, sorted.

    Raises:
        ValueError: More than the 100 images per class the subset holds.
    """
    import skimage.data
    images = skimage.data.lfw_subset()  # [200, 25, 25] in [0, 1]
    per_class = len(images) // len(LFW_CLASSES)
    if train_per_class + val_per_class > per_class:
        raise ValueError(
            f'lfw_subset holds {per_class} images per class, asked for '
            f'{train_per_class} + {val_per_class}: ask for fewer.')
    for index, name in enumerate(LFW_CLASSES):
        first = index * per_class
        for split, start, count in (
                ('train', first, train_per_class),
                ('val', first + train_per_class, val_per_class)):
            folder = osp.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(start, start + count):
                Image.fromarray(np.round(images[i] * 255).astype(
                    np.uint8)).save(osp.join(folder, f'{i:03d}.png'))
    return sorted(LFW_CLASSES)
