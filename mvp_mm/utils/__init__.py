from .seeding import derive_seed, seed_global_rngs
from .synthetic_data import make_imagenet_folder

__all__ = ['derive_seed', 'make_imagenet_folder', 'seed_global_rngs']
