"""BEiT's blockwise masking, exact count, fast."""
import math
import random
from typing import Optional, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class BlockwiseMaskGenerator(BaseTransform):
    """Blockwise masking of BEiT, as used by MVP (75 of 14x14 patches).

    Same algorithm and defaults as BEiT's ``MaskingGenerator``
    (https://github.com/microsoft/unilm/blob/master/beit/masking_generator.py):
    rectangles of random area (``min_num_patches`` to the patches still to
    mask) and log-uniform aspect ratio are added until exactly
    ``num_masking_patches`` are masked. BEiT retries a proposal that falls
    outside the grid, adds no patch or too many; so does this, so the masks
    follow the same distribution. It is faster because the grid is one
    Python integer: a proposal is tested with one AND and a popcount and
    filled with one OR, instead of per-patch loops over a numpy array.
    Random numbers come from Python's ``random``, which mmengine seeds in the
    main process and, per rank and worker, in ``worker_init_fn``: runs are
    reproducible and ranks/workers differ.

    **Added Keys:** ``mask`` (``np.ndarray`` of bool, ``[h, w]``,
    True = masked).

    Args:
        input_size (int | tuple): The patch grid, e.g. 14 for 224/16.
            Defaults to 14.
        num_masking_patches (int): Exactly this many patches are masked.
            Defaults to 75 (MVP §3.3.3).
        min_num_patches (int): The smallest block area. Defaults to 16
            (BEiT's pre-training setting).
        max_num_patches (int, optional): The largest block area. Defaults to
            ``num_masking_patches``.
        min_aspect (float): The smallest block aspect ratio. Defaults to 0.3.
        max_aspect (float, optional): The largest. Defaults to
            ``1 / min_aspect``.
    """

    MAX_PROPOSALS = 100_000  # ~20 are needed for BEiT's 75 of 14 x 14

    def __init__(self,
                 input_size: Union[int, Tuple[int, int]] = 14,
                 num_masking_patches: int = 75,
                 min_num_patches: int = 16,
                 max_num_patches: Optional[int] = None,
                 min_aspect: float = 0.3,
                 max_aspect: Optional[float] = None) -> None:
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.height, self.width = input_size
        num_patches = self.height * self.width
        if not 0 < num_masking_patches <= num_patches:
            raise ValueError(
                f'BlockwiseMaskGenerator: num_masking_patches='
                f'{num_masking_patches} must be in 1..{num_patches}, the size '
                f'of the {self.height}x{self.width} patch grid. Lower it or '
                'enlarge input_size (img_size // patch_size).')
        if min_num_patches < 1:
            raise ValueError('BlockwiseMaskGenerator: min_num_patches must '
                             f'be >= 1, got {min_num_patches}.')
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches or num_masking_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self._bits = self._block_bits()
        self._nbytes = (num_patches + 7) // 8

    def _block_bits(self) -> list:
        """``bits[h * (W + 1) + w]``: an h x w block at the grid origin."""
        row = self.width
        bits = [0] * ((self.height + 1) * (self.width + 1))
        for h in range(1, self.height + 1):
            for w in range(1, self.width + 1):
                bits[h * (self.width + 1) + w] = sum(
                    ((1 << w) - 1) << (r * row) for r in range(h))
        return bits

    def transform(self, results: dict) -> dict:
        """Add ``results['mask']``, ``[h, w]`` bool, True = masked."""
        H, W, target = self.height, self.width, self.num_masking_patches
        min_area, (log_lo, log_hi) = self.min_num_patches, self.log_aspect_ratio
        bits, rand, sqrt, exp = self._bits, random.random, math.sqrt, math.exp
        mask = 0  # the grid as one integer, bit r * W + c = patch (r, c)
        count = proposals = 0
        while count < target:
            max_patches = min(target - count, self.max_num_patches)
            while True:  # BEiT's block proposal, repeated until one fits
                proposals += 1
                if proposals > self.MAX_PROPOSALS:
                    raise RuntimeError(
                        f'{self!r} placed only {count} of {target} patches '
                        f'in {self.MAX_PROPOSALS} block proposals: blocks of '
                        'at least min_num_patches do not fit the grid. Lower '
                        'min_num_patches or widen the aspect range.')
                area = min_area + rand() * (max_patches - min_area)
                sqrt_aspect = exp(0.5 * (log_lo + rand() * (log_hi - log_lo)))
                h = int(sqrt(area) * sqrt_aspect + 0.5)
                w = int(sqrt(area) / sqrt_aspect + 0.5)
                if h >= H or w >= W:
                    continue
                top, left = int(rand() * (H - h)), int(rand() * (W - w))
                block = bits[h * (W + 1) + w] << (top * W + left)
                delta = h * w - (block & mask).bit_count()  # newly masked
                if 0 < delta <= max_patches:
                    mask |= block
                    count += delta
                    break
        flat = np.unpackbits(
            np.frombuffer(mask.to_bytes(self._nbytes, 'little'), np.uint8),
            count=H * W, bitorder='little')
        results['mask'] = flat.reshape(H, W).view(bool)  # True = masked
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(input_size=({self.height}, '
                f'{self.width}), num_masking_patches='
                f'{self.num_masking_patches}, min_num_patches='
                f'{self.min_num_patches}, max_num_patches='
                f'{self.max_num_patches}, log_aspect_ratio='
                f'{self.log_aspect_ratio})')
