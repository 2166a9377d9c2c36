"""Image loading that names an unreadable file and can skip it."""
import io
import logging
from typing import Callable, Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from PIL import Image

from mmpretrain.registry import TRANSFORMS

JPEG_START, JPEG_END = b'\xff\xd8', b'\xff\xd9'
FILE_FIX = 'Replace or delete the file'


def jpeg_is_truncated(data: bytes) -> bool:
    """True for JPEG bytes that end before their image data does.

    Some decoders turn a truncated JPEG into a half-grey image without an
    error. A JPEG ends with the EOI marker; only when it does not (a cut
    file, or a camera trailer after EOI) is the file fully decoded by
    Pillow, which raises on truncation.
    """
    if not data.startswith(JPEG_START) or data.rstrip(b'\x00').endswith(
            JPEG_END):
        return False
    try:
        Image.open(io.BytesIO(data)).load()
    except OSError:
        return True
    return False


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that fails clearly or skips and counts.

    Part of the data pipeline of `MVP: Multimodality-guided Visual
    Pre-training <https://arxiv.org/abs/2203.05175>`_. A corrupt, truncated
    or empty file among 1.28M ImageNet images otherwise ends a multi-day
    run with a bare ``AssertionError`` (or a decoder error) deep in a data
    worker. Here an unreadable image either

    - ``on_error='raise'``: raises ``ValueError`` naming the file and the
      fix (the DataLoader re-raises it in the main process), or
    - ``on_error='skip'``: is logged as a warning with the file name and
      the running count of skipped images in this data worker, and dropped
      (the transform returns None, so mmengine's dataset draws a random
      replacement sample, up to ``max_refetch`` times).

    The image is the file ``results['img_path']`` or, in a sample without
    a path, the bytes ``results['img_bytes']`` (a tar shard's member, from
    :class:`~mvp_mm.datasets.ShardDataset`), decoded and checked the same
    way; messages then name the member and its shard.

    Args:
        on_error (str): ``'raise'`` or ``'skip'``. Defaults to ``'raise'``.
        **kwargs: ``LoadImageFromFile``'s arguments (``to_float32``,
            ``color_type``, ``imdecode_backend``, ``backend_args``), except
            ``ignore_empty``, which ``on_error`` replaces.
    """

    def __init__(self, on_error: str = 'raise', **kwargs) -> None:
        if on_error not in ('raise', 'skip'):
            raise ValueError(
                f"CheckedLoadImageFromFile: on_error must be 'raise' or "
                f"'skip', got {on_error!r}.")
        if 'ignore_empty' in kwargs:
            raise ValueError(
                'CheckedLoadImageFromFile: ignore_empty would drop images '
                "silently; use on_error='skip', which logs and counts them.")
        super().__init__(**kwargs)
        self.on_error = on_error
        self.num_skipped = 0  # in this process (one data worker)

    def _read(self, filename: str) -> bytes:
        if self.file_client_args is not None:
            return fileio.FileClient.infer_client(self.file_client_args,
                                                  filename).get(filename)
        return fileio.get(filename, backend_args=self.backend_args)

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` (or decode ``results['img_bytes']``)
        into ``results['img']``."""
        img = self._load(results, self._decode)
        if img is None:  # skipped
            return None
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _decode(self, data: bytes) -> Optional[np.ndarray]:
        return mmcv.imfrombytes(
            data, flag=self.color_type, backend=self.imdecode_backend)

    def _load(self, results: dict,
              decode: Callable[[bytes], Optional[np.ndarray]]
              ) -> Optional[np.ndarray]:
        """``decode(the image's bytes)``, checked.

        The bytes are those of the file ``results['img_path']`` or, without
        a path, ``results['img_bytes']`` (a shard member, see
        :class:`~mvp_mm.datasets.ShardDataset`; ``img_source`` names it and
        ``img_fix`` says how to fix it in messages; ``img_bytes=None`` with
        ``img_error`` is a member that could not be read).

        Args:
            results (dict): The sample.
            decode (Callable[[bytes], np.ndarray | None]): Decodes the
                bytes; may raise or return None on bad data.

        Returns:
            np.ndarray | None: The decoded image, or None for an unreadable
            image with ``on_error='skip'`` (with ``'raise'``, a
            ``ValueError`` naming the file or member).
        """
        filename, fix, data = results.get('img_path'), FILE_FIX, None
        if filename is None:
            if 'img_bytes' not in results:
                raise KeyError(
                    f'{type(self).__name__} needs img_path (a file) or '
                    'img_bytes (e.g. from ShardDataset) in the sample; it '
                    f'has {sorted(results)}.')
            filename = results.get('img_source', 'an image without a path')
            fix = results.get('img_fix', fix)
            data = results['img_bytes']
            if data is None:
                return self._unreadable(
                    filename, results.get('img_error', 'has no bytes'), fix)
        try:
            if data is None:
                data = self._read(filename)
            img = decode(data)
        except Exception as exc:  # missing, unreadable, decoder error
            return self._unreadable(
                filename, f'cannot be read ({type(exc).__name__}: {exc})',
                fix)
        if img is None or img.size == 0:
            return self._unreadable(
                filename, f'cannot be decoded ({len(data)} bytes: corrupt, '
                'truncated or not an image)', fix)
        if jpeg_is_truncated(data):
            return self._unreadable(
                filename, 'is truncated (its JPEG data ends early)', fix)
        return img

    def _unreadable(self, filename: str, problem: str,
                    fix: str = FILE_FIX) -> None:
        if self.on_error == 'raise':
            raise ValueError(
                f'Training image {filename} {problem}. {fix}, '
                f"or set on_error='skip' on {type(self).__name__} in the "
                'pipeline to skip unreadable images (each one is logged and '
                'counted).')
        self.num_skipped += 1
        print_log(
            f'Skipped unreadable image {filename}: it {problem}. Images '
            f'skipped so far by this data worker: {self.num_skipped}.',
            logger='current',
            level=logging.WARNING)
        return None

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(on_error={self.on_error!r}, '
                f'to_float32={self.to_float32}, color_type='
                f"'{self.color_type}', imdecode_backend="
                f"'{self.imdecode_backend}')")
