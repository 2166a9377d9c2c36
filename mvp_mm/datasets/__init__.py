from .data_root_check import check_dataloader_data, check_dataset_folders
from .samplers import ResumableSampler, SeededIndex, SeededSampler
from .shard_dataset import ShardDataset
from .transforms import (ApplySampleSeed, BlockwiseMaskGenerator,
                         CheckedLoadImageFromFile, RandomResizedCropFromFile)

__all__ = [
    'ApplySampleSeed', 'BlockwiseMaskGenerator', 'CheckedLoadImageFromFile',
    'RandomResizedCropFromFile', 'ResumableSampler', 'SeededIndex',
    'SeededSampler', 'ShardDataset', 'check_dataloader_data',
    'check_dataset_folders'
]
