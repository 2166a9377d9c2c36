"""Deterministic image sets in the real on-disk formats, for demos and tests.

Nothing is downloaded: images are drawn from a seeded RNG, so the same call
gives the same bytes on every machine.
"""
import os
import os.path as osp
from typing import List

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
