from .apply_sample_seed import ApplySampleSeed
from .blockwise_mask import BlockwiseMaskGenerator
from .checked_load_image import CheckedLoadImageFromFile

__all__ = [
    'ApplySampleSeed', 'BlockwiseMaskGenerator', 'CheckedLoadImageFromFile'
]
