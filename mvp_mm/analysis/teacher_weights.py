"""Which weights the teacher of a pre-training run had, for the captions of
the analysis figures (`MVP <https://arxiv.org/abs/2203.05175>`_: what the
student learns depends on it)."""
import glob
import os.path as osp
from typing import Optional

from mmengine.config import Config

#: The warning that :func:`~mvp_mm.models.teachers.pretrained_models.
#: build_open_clip_model` logs when it falls back to random weights.
RANDOM_FALLBACK = 'Falling back to a RANDOMLY INITIALISED'


def _run_logs(checkpoint: str) -> list:
    """mmengine's logs of the run that wrote ``checkpoint``
    (``WORK_DIR/<timestamp>/<timestamp>.log``, the checkpoint in
    ``WORK_DIR``)."""
    work_dir = osp.dirname(osp.abspath(checkpoint))
    return sorted(glob.glob(osp.join(glob.escape(work_dir), '*', '*.log')))


def _fell_back(checkpoint: str) -> Optional[bool]:
    """Whether a log of the run says the teacher fell back to random
    weights; None without logs."""
    logs = _run_logs(checkpoint)
    if not logs:
        return None
    for path in logs:
        with open(path, encoding='utf-8', errors='replace') as f:
            if any(RANDOM_FALLBACK in line for line in f):
                return True
    return False


def describe_teacher(cfg: Config, checkpoint: str) -> str:
    """What the teacher of ``cfg``'s run had: pretrained or random weights.

    Certain from the config unless it allows the fallback to random
    weights (``fallback_to_random=True``, the demo config); then the run's
    logs next to the checkpoint say which happened.

    Args:
        cfg (Config): The pre-training config of the run.
        checkpoint (str): A checkpoint the run wrote (in its work dir).

    Returns:
        str: E.g. ``"teacher CLIP ViT-B-16-quickgelu: pretrained
        ('openai')"``, or ``''`` for a config without a teacher.
    """
    teacher = cfg.get('model', {}).get('target_generator')
    if not teacher:
        return ''
    family = 'CLIP' if teacher.get('type') == 'CLIPTargetGenerator' \
        else 'timm'
    name = f"teacher {family} {teacher.get('model_name', '')}".rstrip()
    pretrained = teacher.get('pretrained')
    if not pretrained:
        return f'{name}: RANDOMLY INITIALISED (pretrained=None)'
    weights = osp.basename(pretrained) if isinstance(pretrained, str) \
        else 'pretrained'
    if not teacher.get('fallback_to_random'):
        return f'{name}: pretrained ({weights!r})'
    fell_back = _fell_back(checkpoint)
    if fell_back is None:
        return (f'{name}: {weights!r}, or RANDOM if the run could not get '
                'them (fallback_to_random; its log says which)')
    return f'{name}: ' + (
        f'RANDOMLY INITIALISED ({weights!r} unavailable to the run)'
        if fell_back else f'pretrained ({weights!r})')
