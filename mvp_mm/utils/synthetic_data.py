"""Deterministic data sets in the real on-disk formats, for demos and tests.

Nothing is downloaded: images are drawn from a seeded RNG, so the same call
gives the same bytes on every machine.
"""
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image


def _draw(rng: np.random.Generator, kind: int, size: int) -> np.ndarray:
    """One RGB image ``[size, size, 3]`` uint8 of texture family ``kind``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0, 255, 3)
    other = rng.uniform(0, 255, 3)
    freq = rng.uniform(3, 9)
    phase = rng.uniform(0, 2 * np.pi)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    family = kind % 4
    if family == 0:  # stripes
        alpha = 0.5 + 0.5 * np.sin(2 * np.pi * freq * u + phase)
    elif family == 1:  # checkerboard
        alpha = ((np.floor(xx * freq) + np.floor(yy * freq)) % 2)
    elif family == 2:  # blob
        cy, cx, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), \
            rng.uniform(0.1, 0.3)
        alpha = (((yy - cy)**2 + (xx - cx)**2) < r * r).astype(np.float32)
    else:  # smooth gradient
        alpha = np.clip(u, 0, 1)
    img = alpha[..., None] * base + (1 - alpha[..., None]) * other
    img += rng.normal(0, 8, img.shape)  # texture noise
    return np.clip(img, 0, 255).astype(np.uint8)


def make_imagenet_folder(root: str,
                         num_classes: int = 4,
                         images_per_class: int = 16,
                         image_size: int = 96,
                         split: str = 'train',
                         seed: int = 0) -> List[str]:
    """Write ``root/<split>/<class>/<i>.JPEG`` in ImageNet's folder layout.

    Args:
        root (str): Dataset root (e.g. ``data/imagenet``).
        num_classes (int): Number of class folders. Defaults to 4.
        images_per_class (int): Images per class. Defaults to 16.
        image_size (int): Side of the square images. Defaults to 96.
        split (str): Sub-folder, ``'train'`` or ``'val'``. Defaults to
            ``'train'``.
        seed (int): RNG seed. Defaults to 0.

    Returns:
        List[str]: The class folder names, sorted.
    """
    rng = np.random.default_rng(seed)
    classes = [f'n{index:08d}' for index in range(num_classes)]
    for index, name in enumerate(classes):
        folder = osp.join(root, split, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(images_per_class):
            Image.fromarray(_draw(rng, index, image_size)).save(
                osp.join(folder, f'{name}_{i:04d}.JPEG'), quality=95)
    return classes


def make_ade20k_folder(root: str,
                       num_train: int = 4,
                       num_val: int = 2,
                       image_size: Tuple[int, int] = (96, 128),
                       num_classes: int = 150,
                       seed: int = 0) -> Dict[str, List[str]]:
    """Write ADE20K's ``ADEChallengeData2016`` layout, as mmseg reads it.

    ``root/images/{training,validation}/ADE_{train,val}_%08d.jpg`` and
    ``root/annotations/{training,validation}/ADE_{train,val}_%08d.png``: the
    annotations are single-channel uint8 PNGs, 0 = "other" (ignored by
    ``reduce_zero_label=True``), 1..``num_classes`` = the classes. Each image
    is a few Voronoi regions; a region's colour follows its class (plus
    noise), so a model can learn the labels; a rectangle per image is 0.

    Args:
        root (str): Dataset root (mmseg's ``data/ade/ADEChallengeData2016``).
        num_train (int): Training images. Defaults to 4.
        num_val (int): Validation images. Defaults to 2.
        image_size (tuple[int, int]): ``(height, width)``. Defaults to
            ``(96, 128)``.
        num_classes (int): Classes, labelled 1..num_classes. Defaults to 150
            (ADE20K's).
        seed (int): RNG seed. Defaults to 0.

    Returns:
        dict: ``{'training': [names], 'validation': [names]}``, file names
        without extension.
    """
    rng = np.random.default_rng(seed)
    palette = rng.uniform(0, 255, (num_classes + 1, 3))  # colour per class
    height, width = image_size
    yy, xx = np.mgrid[0:height, 0:width]
    names = {}
    for split, tag, count in (('training', 'train', num_train),
                              ('validation', 'val', num_val)):
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        names[split] = []
        for index in range(count):
            num_regions = int(rng.integers(3, 6))
            seeds_y = rng.uniform(0, height, num_regions)
            seeds_x = rng.uniform(0, width, num_regions)
            nearest = np.argmin((yy[..., None] - seeds_y)**2 +
                                (xx[..., None] - seeds_x)**2,
                                axis=-1)  # [H, W] region index
            classes = rng.integers(1, num_classes + 1, num_regions)
            label = classes[nearest].astype(np.uint8)  # [H, W], 1..C
            top = rng.integers(0, height // 2)
            left = rng.integers(0, width // 2)
            label[top:top + height // 4, left:left + width // 4] = 0
            image = palette[label] + rng.normal(0, 10, (height, width, 3))
            name = f'ADE_{tag}_{index + 1:08d}'
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
                osp.join(root, 'images', split, name + '.jpg'), quality=95)
            Image.fromarray(label).save(
                osp.join(root, 'annotations', split, name + '.png'))
            names[split].append(name)
    return names
