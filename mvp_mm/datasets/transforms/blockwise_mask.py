"""BEiT's blockwise masking, exact count, fast."""
import math
import random
from typing import List, Optional, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class BlockwiseMaskGenerator(BaseTransform):
    """Blockwise masking of BEiT, as used by MVP (75 of 14x14 patches).

    Same algorithm and defaults as BEiT's ``MaskingGenerator``
    (https://github.com/microsoft/unilm/blob/master/beit/masking_generator.py):
    a block has a uniform random area (``min_num_patches`` to the patches
    still to mask, at most ``max_num_patches``), a log-uniform aspect ratio,
    ``round``-ed height and width strictly smaller than the grid, and an
    origin drawn uniformly from ``0 .. H - h`` and ``0 .. W - w`` (both ends
    included, so the last row and column are masked as often as the first;
    mmpretrain's ``BEiTMaskGenerator`` excludes the end and never masks
    them). A block is kept if it adds at least one new patch and no more
    than are still to mask (nor more than ``max_num_patches``).
    The one difference: BEiT gives up on a mask after 10 rejected proposals
    in a row and returns it short (a third of BEiT's 75-of-196 masks have
    fewer patches, mostly 72-74); this keeps proposing until exactly
    ``num_masking_patches`` are masked, so the accepted blocks follow BEiT's
    distribution and the count is the paper's. It is faster because the
    grid is one Python integer: a proposal is tested with one AND and a
    popcount and filled with one OR, instead of per-patch loops over a
    numpy array. Random numbers come from Python's ``random``, which
    mmengine seeds in the main process and, per rank and worker, in
    ``worker_init_fn``: runs are reproducible and ranks/workers differ.

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

    def _block_bits(self) -> List[List[int]]:
        """``bits[h][w]``: an h x w block at the grid origin (0 if h or w is
        0), as bits of the grid integer."""
        return [[sum(((1 << w) - 1) << (r * self.width) for r in range(h))
                 for w in range(self.width + 1)]
                for h in range(self.height + 1)]

    def transform(self, results: dict) -> dict:
        """Add ``results['mask']``, ``[h, w]`` bool, True = masked."""
        H, W, target = self.height, self.width, self.num_masking_patches
        min_area = self.min_num_patches
        log_lo, log_hi = self.log_aspect_ratio
        # sqrt(aspect) = exp(half_log_lo + U * half_log_span), U ~ [0, 1)
        half_log_lo, half_log_span = 0.5 * log_lo, 0.5 * (log_hi - log_lo)
        bits, rand, sqrt, exp = self._bits, random.random, math.sqrt, math.exp
        mask = 0  # the grid as one integer, bit r * W + c = patch (r, c)
        count = 0
        max_patches = min(target, self.max_num_patches)
        area_span = max_patches - min_area
        # BEiT's block proposals, each kept if it fits and adds 1 to
        # max_patches patches, until exactly ``target`` are masked
        for _ in range(self.MAX_PROPOSALS):
            side = sqrt(min_area + rand() * area_span)  # sqrt(area)
            sqrt_aspect = exp(half_log_lo + rand() * half_log_span)
            h, w = round(side * sqrt_aspect), round(side / sqrt_aspect)
            if h >= H or w >= W:
                continue
            # BEiT's randint(0, H - h): both ends included, so blocks reach
            # the last row and column as often as the first
            top = int(rand() * (H + 1 - h))  # 0 .. H - h
            left = int(rand() * (W + 1 - w))  # 0 .. W - w
            block = bits[h][w] << (top * W + left)
            delta = h * w - (block & mask).bit_count()  # newly masked
            if 0 < delta <= max_patches:
                mask |= block
                count += delta
                if count == target:
                    break
                max_patches = min(target - count, self.max_num_patches)
                area_span = max_patches - min_area
        else:
            raise RuntimeError(
                f'{self!r} placed only {count} of {target} patches in '
                f'{self.MAX_PROPOSALS} block proposals: blocks of at least '
                'min_num_patches do not fit the grid. Lower min_num_patches '
                'or widen the aspect range.')
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
