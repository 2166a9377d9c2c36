"""Analysis of MVP checkpoints: attention maps, zero-shot probes."""
from .checkpoint import load_state_dict

__all__ = ['load_state_dict']
