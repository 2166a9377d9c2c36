"""Analysis of MVP checkpoints and runs: attention maps, zero-shot probes,
training curves."""
from .attention_maps import (attention_panels, cls_attention_maps,
                             explained_figure, figure_row, overlay_heatmap)
from .checkpoint import load_state_dict
from .teacher_weights import describe_teacher
from .training_curves import plot_training_curves, read_scalars
from .vit_subjects import (ViTSubject, from_mmpretrain_config, from_open_clip,
                           from_timm, load_vit_subject)

__all__ = [
    'ViTSubject', 'attention_panels', 'cls_attention_maps',
    'describe_teacher', 'explained_figure', 'figure_row',
    'from_mmpretrain_config', 'from_open_clip', 'from_timm',
    'load_state_dict', 'load_vit_subject', 'overlay_heatmap',
    'plot_training_curves', 'read_scalars'
]
