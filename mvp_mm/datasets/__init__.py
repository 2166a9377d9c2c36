from .transforms import BlockwiseMaskGenerator

__all__ = ['BlockwiseMaskGenerator']
