from .blockwise_mask import BlockwiseMaskGenerator

__all__ = ['BlockwiseMaskGenerator']
