"""Load an image and take its random resized crop, decoding only what the
crop needs."""
import io
import math
from typing import Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.image.geometric import pillow_interp_codes
from PIL import ExifTags, Image

from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS

from .checked_load_image import CheckedLoadImageFromFile

#: cv2 flags that decode a JPEG at 1/1, 1/2, 1/4 or 1/8 of its size in the
#: DCT domain (libjpeg's scaled IDCT), as BGR, EXIF orientation applied.
DECODE_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8
}
#: EXIF orientations that swap width and height (transpose, rotate 90/270).
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
#: EXIF orientations whose upright x (or y) axis runs against the stored
#: image's: the decoded pixel grid is then aligned with the far edge.
X_FLIPPING_ORIENTATIONS = (2, 3, 6, 7)
Y_FLIPPING_ORIENTATIONS = (3, 4, 7, 8)
#: Interpolations that ``F.interpolate(..., antialias=True)`` computes as
#: Pillow does (same kernels, same support when downscaling).
PILLOW_LIKE_MODES = ('bilinear', 'bicubic')


def image_header(data: bytes) -> Tuple[int, int, bool, int]:
    """``(height, width, is_jpeg, exif_orientation)`` of an encoded image,
    read from its header only; the size is the upright one (cv2 applies
    the EXIF orientation when decoding)."""
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
        is_jpeg = img.format == 'JPEG'
        orientation = 1
        if 'exif' in img.info:
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    if orientation in TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return height, width, is_jpeg, orientation


def resize_like_pillow(img: np.ndarray, size: Tuple[int, int],
                       interpolation: str) -> np.ndarray:
    """Pillow's antialiased bilinear/bicubic resize, computed by torch.

    ``F.interpolate(..., antialias=True)`` implements Pillow's separable
    filters (https://pytorch.org/docs/stable/generated/torch.nn.functional.
    interpolate.html); on uint8 images torch has a vectorised kernel, several
    times faster than Pillow's. Results differ from Pillow's by at most one
    intensity level in rare pixels (rounding).

    Args:
        img (np.ndarray): ``[H, W, C]`` uint8 (a strided view is fine).
        size (tuple[int, int]): ``(height, width)`` of the result.
        interpolation (str): ``'bilinear'`` or ``'bicubic'``.

    Returns:
        np.ndarray: ``[height, width, C]`` uint8 (a view of a CHW tensor).
    """
    chw = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)  # [1, C, H, W]
    out = F.interpolate(chw, size=size, mode=interpolation, antialias=True)
    return out[0].permute(1, 2, 0).numpy()  # [h, w, C]


def resize_box_with_pillow(img: np.ndarray, box: Tuple[float, float, float,
                                                     float],
                           size: Tuple[int, int],
                           interpolation: str) -> np.ndarray:
    """Pillow's resize of a sub-pixel ``box`` of ``img``.

    Only the box and the filter's reach around it are handed to Pillow
    (its support: at most 3 pixels, Lanczos's, times the downscale factor;
    4 are taken), so the result equals Pillow's resize of the whole image
    with that box, without copying the whole image.

    Args:
        img (np.ndarray): ``[H, W, C]`` uint8.
        box (tuple[float]): ``(left, top, right, bottom)``, pixel edges.
        size (tuple[int, int]): ``(height, width)`` of the result.
        interpolation (str): A key of mmcv's ``pillow_interp_codes``.

    Returns:
        np.ndarray: ``[height, width, C]`` uint8.
    """
    left, top, right, bottom = box
    reach = 4 * max(1.0, (right - left) / size[1], (bottom - top) / size[0])
    x0 = max(0, math.floor(left - reach))
    y0 = max(0, math.floor(top - reach))
    x1 = min(img.shape[1], math.ceil(right + reach))
    y1 = min(img.shape[0], math.ceil(bottom + reach))
    region = Image.fromarray(img[y0:y1, x0:x1])
    out = region.resize(size[::-1], pillow_interp_codes[interpolation],
                        box=(left - x0, top - y0, right - x0, bottom - y0))
    return np.array(out)  # writable (np.asarray's view of Pillow's is not)


@TRANSFORMS.register_module()
class RandomResizedCropFromFile(CheckedLoadImageFromFile):
    """``CheckedLoadImageFromFile`` + mmpretrain's ``RandomResizedCrop`` in
    one step, decoding at the smallest JPEG scale the crop allows.

    Part of the data pipeline of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. Where the two
    transforms decode the whole image at full resolution, copy the crop
    and resize it with Pillow, this one

    1. reads the image size from the file's header and draws the crop box
       with ``RandomResizedCrop.rand_crop_params`` itself (the same boxes
       from the same RNG state, the same numbers drawn);
    2. with ``backend='pillow'``, decodes a JPEG at 1/2, 1/4 or 1/8 scale in
       the DCT domain (``cv2.IMREAD_REDUCED_COLOR_*``, libjpeg's scaled
       IDCT) when the crop at that scale is still at least the output size
       (it is downscaled anyway), and resizes the same box, in sub-pixel
       coordinates, with Pillow (:func:`resize_box_with_pillow`);
    3. otherwise decodes in full and, for Pillow's bilinear or bicubic,
       resizes with torch's uint8 kernel for Pillow's antialiased filters
       (:func:`resize_like_pillow`); anything else with ``mmcv.imresize``.

    ``exact=True`` decodes in full and resizes with ``mmcv.imresize``: the
    output is then bit for bit that of ``CheckedLoadImageFromFile`` +
    ``RandomResizedCrop``. The fast path stays within a PSNR bound of it
    (docs/gpu_and_data_pipeline.md; tests/test_datasets/test_fast_data_pipeline.py).

    The output is BGR ``uint8`` ``[h, w, 3]``, like mmcv's loader (the data
    preprocessor's ``to_rgb=True`` makes it RGB on the device); a bad file
    is a clear error or skipped and counted (``on_error``), as in
    :class:`CheckedLoadImageFromFile`. Without ``img_path``, the bytes are
    ``results['img_bytes']`` (a tar shard's member, from
    :class:`~mvp_mm.datasets.ShardDataset`), on the same fast path.

    **Added keys:** ``img``, ``img_shape`` (the output's, ``[h, w, 3]``),
    ``ori_shape`` (the file's), ``crop_bbox`` (the drawn box, ``[x1, y1, x2,
    y2]`` inclusive, source pixels), ``decode_scale`` (1, 2, 4 or 8),
    ``decode_box`` (the box in decoded pixels, ``(left, top, right,
    bottom)`` edges, sub-pixel).

    Args:
        scale (Sequence | int): Output ``(h, w)``, or one int for a square.
        crop_ratio_range (tuple): Crop area range, as a share of the image.
            Defaults to (0.08, 1.0).
        aspect_ratio_range (tuple): Crop aspect ratio range. Defaults to
            (3/4, 4/3).
        max_attempts (int): Draws before the central-crop fallback.
            Defaults to 10.
        interpolation (str): As ``RandomResizedCrop``. Defaults to
            ``'bilinear'``.
        backend (str): Resize backend, ``'cv2'`` or ``'pillow'``, as
            ``RandomResizedCrop``. Defaults to ``'cv2'``.
        exact (bool): Full-resolution decoding and ``mmcv.imresize``.
            Defaults to False.
        on_error (str): ``'raise'`` or ``'skip'``, see
            :class:`CheckedLoadImageFromFile`. Defaults to ``'raise'``.
        backend_args (dict, optional): File backend arguments (mmengine
            fileio). Defaults to None.
    """

    def __init__(self,
                 scale: Union[Sequence[int], int],
                 crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10,
                 interpolation: str = 'bilinear',
                 backend: str = 'cv2',
                 exact: bool = False,
                 on_error: str = 'raise',
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(on_error=on_error, backend_args=backend_args)
        self.crop = RandomResizedCrop(scale, crop_ratio_range,
                                      aspect_ratio_range, max_attempts,
                                      interpolation, backend)
        self.exact = exact

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` (or ``results['img_bytes']``), crop
        and resize it."""
        img = self._load(results,
                         lambda data: self._decode_for_crop(data, results))
        if img is None:  # skipped
            return None
        img = self._crop_and_resize(img, results)
        results['img'] = img
        results['img_shape'] = img.shape  # as RandomResizedCrop sets it
        return results

    def _decode_for_crop(self, data: bytes,
                         results: dict) -> Optional[np.ndarray]:
        """Draw the crop box from the header; decode at the scale it
        allows."""
        height, width, is_jpeg, orientation = image_header(data)
        # rand_crop_params reads only the shape: an empty stand-in.
        top, left, crop_h, crop_w = self.crop.rand_crop_params(
            np.empty((height, width, 0), np.uint8))
        out_h, out_w = self.crop.scale
        scale = 1
        if is_jpeg and not self.exact and self.crop.backend == 'pillow':
            scale = max([1] + [
                s for s in (2, 4, 8)
                if crop_h >= s * out_h and crop_w >= s * out_w
            ])
        img = cv2.imdecode(np.frombuffer(data, np.uint8), DECODE_FLAGS[scale])
        expected = (-(-height // scale), -(-width // scale))  # libjpeg: ceil
        if img is not None and img.shape[:2] != expected:
            raise ValueError(
                f'the decoder gives {img.shape[:2]} pixels where the header '
                f'says {expected} (at 1/{scale} scale)')
        results['ori_shape'] = (height, width)
        results['crop_bbox'] = np.array(
            [left, top, left + crop_w - 1, top + crop_h - 1])
        results['decode_scale'] = scale
        # The box in decoded pixels. libjpeg's 1/scale grid starts at the
        # stored image's first pixel; along an axis the EXIF orientation
        # reverses, that is the far edge, so the upright grid starts
        # ceil(n / scale) * scale - n source pixels before the near one.
        dx = (-width) % scale if orientation in X_FLIPPING_ORIENTATIONS else 0
        dy = (-height) % scale if orientation in Y_FLIPPING_ORIENTATIONS \
            else 0
        results['decode_box'] = ((left + dx) / scale, (top + dy) / scale,
                                 (left + crop_w + dx) / scale,
                                 (top + crop_h + dy) / scale)
        return img

    def _crop_and_resize(self, img: np.ndarray, results: dict) -> np.ndarray:
        """The crop box of the decoded image, resized to the output size."""
        size = tuple(self.crop.scale)  # (h, w)
        if results['decode_scale'] > 1:
            return resize_box_with_pillow(img, results['decode_box'], size,
                                          self.crop.interpolation)
        x1, y1, x2, y2 = results['crop_bbox']
        crop = img[y1:y2 + 1, x1:x2 + 1]  # a view, as mmcv.imcrop's
        if not self.exact and self.crop.backend == 'pillow' and \
                self.crop.interpolation in PILLOW_LIKE_MODES:
            return resize_like_pillow(crop, size, self.crop.interpolation)
        return mmcv.imresize(
            crop,
            size[::-1],
            interpolation=self.crop.interpolation,
            backend=self.crop.backend)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.crop!r}, exact='
                f'{self.exact}, on_error={self.on_error!r})')
