from .apply_sample_seed import ApplySampleSeed
from .blockwise_mask import BlockwiseMaskGenerator
from .checked_load_image import CheckedLoadImageFromFile
from .random_resized_crop_from_file import RandomResizedCropFromFile

__all__ = [
    'ApplySampleSeed', 'BlockwiseMaskGenerator', 'CheckedLoadImageFromFile',
    'RandomResizedCropFromFile'
]
