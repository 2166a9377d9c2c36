"""Training curves from a run's own scalars.json files."""
import json

import pytest
from PIL import Image

from mvp_mm.analysis import plot_training_curves, read_scalars


def _scalars(path, rows):
    with open(path, 'w') as f:
        for row in rows:
            f.write(json.dumps(row) + '\n')
    return str(path)


def test_read_scalars_merges_a_run_and_its_resumed_run(tmp_path):
    first = _scalars(tmp_path / 'a.json', [
        dict(lr=1e-3, loss=0.0, iter=1, epoch=1, step=1),
        dict(lr=1e-3, loss=-0.1, iter=2, epoch=1, step=2),
        {'alignment/cls': 0.2, 'step': 2},
        dict(lr=1e-3, loss=-0.2, iter=3, epoch=1, step=3),  # lost: killed
    ])
    resumed = _scalars(tmp_path / 'b.json', [
        dict(lr=1e-3, loss=-0.25, iter=3, epoch=1, step=3),
        dict(lr=1e-3, loss=-0.3, iter=4, epoch=1, step=4),
        {'alignment/cls': 0.4, 'step': 4},
    ])
    scalars = read_scalars([first, resumed])
    assert scalars['loss'] == [(1, 0.0), (2, -0.1), (3, -0.25), (4, -0.3)]
    assert scalars['alignment/cls'] == [(2, 0.2), (4, 0.4)]
    assert scalars['iter'][-1] == (4, 4.0)


def test_plot_training_curves_writes_both_panels(tmp_path):
    scalars = {
        'loss': [(i, -i / 10) for i in range(1, 11)],
        'alignment/cls': [(5, 0.1), (10, 0.3)],
        'alignment/masked': [(5, 0.2), (10, 0.4)],
        'alignment/visible': [(5, 0.3), (10, 0.5)],
    }
    out = str(tmp_path / 'curves.png')
    plot_training_curves(scalars, out, title='a run')
    with Image.open(out) as image:
        assert image.format == 'PNG' and image.size == (1000, 400)
        right = image.convert('RGB').crop((500, 0, 1000, 400))
        colours = {c for _, c in right.getcolors(1 << 20)}
    # matplotlib's default cycle: one line per alignment score.
    for colour in ((31, 119, 180), (255, 127, 14), (44, 160, 44)):
        assert colour in colours

    with pytest.raises(KeyError, match='No training loss'):
        plot_training_curves({'alignment/cls': [(1, 0.1)]}, out)


def test_plot_training_curves_adds_a_knn_panel_when_logged(tmp_path):
    scalars = {
        'loss': [(i, -i / 10) for i in range(1, 11)],
        'alignment/cls': [(5, 0.1), (10, 0.3)],
        'knn/cls_top1': [(5, 10.0), (10, 30.0)],
        'knn/cls_top5': [(5, 40.0), (10, 60.0)],
        'knn/patch_mean_top1': [(5, 20.0), (10, 25.0)],
        'knn/patch_mean_top5': [(5, 50.0), (10, 70.0)],
    }
    out = str(tmp_path / 'curves.png')
    plot_training_curves(scalars, out)
    with Image.open(out) as image:
        assert image.size == (1500, 400)
        right = image.convert('RGB').crop((1000, 0, 1500, 400))
        colours = {c for _, c in right.getcolors(1 << 20)}
    for colour in ((148, 103, 189), (140, 86, 75)):  # purple: cls, brown
        assert colour in colours
