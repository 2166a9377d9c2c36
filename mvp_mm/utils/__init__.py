from .synthetic_data import make_imagenet_folder

__all__ = ['make_imagenet_folder']
