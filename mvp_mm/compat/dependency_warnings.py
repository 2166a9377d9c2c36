"""Silence the dependency warnings that mvp_mm's own configs trigger.

Every start of a tool printed warnings that are about the libraries, not
about the user's run: mmcv-lite lacking a compiled op that no mvp_mm model
uses, mmengine importing ``pkg_resources``, mmpretrain's BEiT calling
``torch.meshgrid`` without ``indexing``, mmseg's own base configs using its
own deprecated arguments. Each filter below matches one message (a regular
expression on its start) raised from one module, so the same warning from
anywhere else, and every other warning, still shows. Run Python with any
``-W`` option (e.g. ``python -W default tools/train.py ...``) to see them
all.
"""
import sys
import warnings

#: ``(message, category, module, why)`` of each silenced warning; the
#: module is where Python attributes the warning (the caller of
#: ``warnings.warn`` at its ``stacklevel``).
DEPENDENCY_WARNINGS = (
    (r'Fail to import ``MultiScaleDeformableAttention``', UserWarning,
     r'mmcv\.cnn\.bricks\.transformer',
     'mmcv-lite has no compiled ops; no mvp_mm model uses this one '
     '(compat/mmcv_ops.py covers the ones mmseg imports).'),
    (r'pkg_resources is deprecated as an API', UserWarning,
     r'mmengine\.utils\.package_utils|importlib',
     'mmengine 0.10.7 imports (and reloads) pkg_resources to find '
     '`mmpretrain::` / `mmseg::` config bases.'),
    (r'torch\.meshgrid: in an upcoming release', UserWarning,
     r'torch\.functional',
     "mmpretrain's BEiT RelativePositionBias calls torch.meshgrid without "
     "`indexing` (its default 'ij' is what it needs)."),
    (r'``build_loss`` would be deprecated soon', UserWarning,
     r'mmseg\.models\.builder',
     "mmseg's decode heads build their losses with mmseg's own build_loss."),
    (r'`reduce_zero_label` will be deprecated', UserWarning,
     r'mmseg\.datasets\.transforms\.loading',
     "mmseg's ADE20K base pipeline passes reduce_zero_label=True to "
     'LoadAnnotations (the dataset sets the same).'),
    (r'Default ``avg_non_ignore`` is False', UserWarning,
     r'mmseg\.models\.losses\.cross_entropy_loss',
     'An announcement of the default, which the segmentation configs keep: '
     "BEiT's loss averages over all pixels."),
    (r"Only use 'alpha' for pillow backend", UserWarning,
     r'mmcv\.image\.photometric',
     "mmpretrain's ColorJitter (BEiT's jitter in the pre-training configs) "
     'calls mmcv.adjust_color with the pillow backend and alpha alone, '
     'which is all that backend takes; mmcv warns on every sample.'),
    (r'The draw is False', UserWarning,
     r'mmseg\.engine\.hooks\.visualization_hook',
     "mmseg's default runtime adds SegVisualizationHook with draw=False."),
)


def install_dependency_warning_filters() -> None:
    """Ignore exactly the warnings in :data:`DEPENDENCY_WARNINGS`.

    Does nothing when Python was given ``-W`` options (``sys.warnoptions``,
    also set by ``PYTHONWARNINGS``): the user's filters then decide alone.
    Installing twice changes nothing.
    """
    if sys.warnoptions:
        return
    for message, category, module, _ in DEPENDENCY_WARNINGS:
        warnings.filterwarnings(
            'ignore', message=message, category=category,
            module=rf'({module})\Z')
