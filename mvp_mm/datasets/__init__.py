from .data_root_check import check_dataloader_data, check_dataset_folders
from .samplers import SeededIndex, SeededSampler
from .transforms import (ApplySampleSeed, BlockwiseMaskGenerator,
                         CheckedLoadImageFromFile)

__all__ = [
    'ApplySampleSeed', 'BlockwiseMaskGenerator', 'CheckedLoadImageFromFile',
    'SeededIndex', 'SeededSampler', 'check_dataloader_data',
    'check_dataset_folders'
]
