from .model_flops import mvp_step_flops, vit_forward_flops
from .non_finite import check_finite_state_dict, describe_non_finite
from .photo_data import (HELD_OUT_PHOTOS, LFW_CLASSES, load_photos,
                         make_lfw_imagenet_folders,
                         make_photo_imagenet_folder, write_photos)
from .seeding import derive_seed, seed_cpu_rngs, seed_global_rngs
from .synthetic_data import make_ade20k_folder, make_imagenet_folder

__all__ = [
    'HELD_OUT_PHOTOS', 'LFW_CLASSES', 'check_finite_state_dict',
    'derive_seed', 'describe_non_finite', 'load_photos', 'make_ade20k_folder',
    'make_imagenet_folder', 'make_lfw_imagenet_folders',
    'make_photo_imagenet_folder', 'mvp_step_flops',
    'seed_cpu_rngs', 'seed_global_rngs', 'vit_forward_flops', 'write_photos'
]
