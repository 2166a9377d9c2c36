"""Loss, held-out alignment and k-NN accuracy curves of a pre-training run,
from its own records (mmengine's ``vis_data/scalars.json``)."""
import json
from typing import Dict, List, Sequence, Tuple

from matplotlib.figure import Figure

#: The held-out scores :class:`~mvp_mm.engine.MVPAlignmentHook` logs.
ALIGNMENT_KEYS = ('alignment/cls', 'alignment/masked', 'alignment/visible')
#: The k-NN accuracies :class:`~mvp_mm.engine.KNNMonitorHook` logs.
KNN_KEYS = ('knn/cls_top1', 'knn/patch_mean_top1', 'knn/cls_top5',
            'knn/patch_mean_top5')

Curve = List[Tuple[int, float]]


def read_scalars(paths: Sequence[str]) -> Dict[str, Curve]:
    """Every scalar of the runs' ``scalars.json`` files, by name.

    Args:
        paths (Sequence[str]): ``<work_dir>/<timestamp>/vis_data/
            scalars.json`` of one run, or of a run and its resumed runs,
            oldest first: a step logged twice keeps the later value.

    Returns:
        Dict[str, Curve]: ``{name: [(step, value), ...]}``, steps ascending.
    """
    by_step: Dict[str, Dict[int, float]] = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                step = row.pop('step')
                for name, value in row.items():
                    if isinstance(value, (int, float)):
                        by_step.setdefault(name, {})[step] = float(value)
    return {name: sorted(steps.items()) for name, steps in by_step.items()}


def plot_training_curves(scalars: Dict[str, Curve],
                         out: str,
                         title: str = '') -> None:
    """Two panels: the training loss per iteration, and the held-out
    student-teacher cosine (CLS / masked / visible patches) per evaluation;
    a third, the k-NN accuracy (top-1 solid, top-5 dashed), when the run
    logged it.

    Args:
        scalars (Dict[str, Curve]): From :func:`read_scalars`; needs
            ``loss``, and the ``alignment/*`` keys for the second panel, the
            ``knn/*`` keys for the third.
        out (str): The PNG to write.
        title (str): Above the panels. Defaults to ``''``.

    Raises:
        KeyError: ``scalars`` has no ``loss``.
    """
    if 'loss' not in scalars:
        raise KeyError(
            f'No training loss among the scalars ({sorted(scalars)}): is '
            'this the scalars.json of a training run?')
    knn = [key for key in KNN_KEYS if key in scalars]
    panels = 3 if knn else 2
    figure = Figure(figsize=(5 * panels, 4), dpi=100, layout='constrained')
    loss_axes, alignment_axes, *knn_axes = figure.subplots(1, panels)
    steps, losses = zip(*scalars['loss'])
    loss_axes.plot(steps, losses, color='tab:red')
    loss_axes.set(title='training loss (Eq. 9: minus mean cosine)',
                  xlabel='iteration', ylabel='loss')
    for key in ALIGNMENT_KEYS:
        if key in scalars:
            steps, values = zip(*scalars[key])
            alignment_axes.plot(steps, values, marker='o',
                                label=key.split('/')[1])
    alignment_axes.set(title='held-out alignment (student vs teacher)',
                       xlabel='iteration', ylabel='mean cosine')
    if alignment_axes.lines:
        alignment_axes.legend()
    for axes in knn_axes:
        for key in knn:
            kind, rank = key.split('/')[1].rsplit('_', 1)
            steps, values = zip(*scalars[key])
            axes.plot(steps, values, marker='o',
                      linestyle='-' if rank == 'top1' else '--',
                      color='tab:purple' if kind == 'cls' else 'tab:brown',
                      label=f'{kind} {rank}')
        axes.set(title='weighted k-NN accuracy (student features)',
                 xlabel='iteration', ylabel='%')
        axes.legend()
    for axes in (loss_axes, alignment_axes, *knn_axes):
        axes.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.savefig(out)
