"""What the evaluation tools print: tools/test.py the metrics and where the
full log is (environment, config and hooks stay in the log file);
tools/analysis/zero_shot.py torch's too-many-workers warning once."""
import json
import os
import os.path as osp
import re

import pytest
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from tiny import IMG, TINY_CLIP_WITH_TEXT, run_tool, tiny_pretrain_cfg

from mvp_mm.utils import make_imagenet_folder



@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """A 1-iteration tiny pre-training run: (config file, checkpoint)."""
    root = tmp_path_factory.mktemp('tool_console')
    make_imagenet_folder(str(root / 'data'), num_classes=2,
                         images_per_class=2, image_size=IMG)
    cfg = tiny_pretrain_cfg(str(root / 'data'), str(root / 'work'),
                            max_iters=1)
    cfg.model.target_generator.model_overrides = TINY_CLIP_WITH_TEXT
    config = str(root / 'tiny.py')
    cfg.dump(config)
    Runner.from_cfg(cfg).train()
    return config, str(root / 'work' / 'iter_1.pth')


def test_test_tool_prints_the_metrics_and_keeps_the_rest_in_the_log(
        tiny_run, tmp_path, capfd):
    config, checkpoint = tiny_run
    out = tmp_path / 'metrics.json'
    run_tool('test.py', config, checkpoint, '--work-dir', tmp_path / 'test',
             '--out', out)
    console = capfd.readouterr()
    lines = (console.out + console.err).splitlines()
    metrics = json.loads(out.read_text())
    assert set(metrics) == {'alignment/cls', 'alignment/masked',
                            'alignment/visible'}
    for name, value in metrics.items():
        assert re.search(rf'^{name} +{value:.4f}$', console.out, re.M)
    log = console.out.split('Full log: ')[-1].strip()
    assert osp.isfile(log)
    # the random teacher's warning, the first line, the metrics, --out, log
    assert len(lines) <= 8, '\n'.join(lines)
    for noise in ('INFO', 'System environment', 'Config:',
                  'Loads checkpoint by'):
        assert noise not in console.out + console.err, noise
    with open(log) as f:
        text = f.read()
    for entry in ('System environment', 'Config:', 'Hooks will be executed',
                  'Loads checkpoint by local backend'):
        assert entry in text, entry


def test_zero_shot_warns_once_about_too_many_workers(tiny_run, tmp_path,
                                                    recwarn):
    config, checkpoint = tiny_run
    # A current logger of this test's own (the last one printed to the
    # previous test's captured console, closed now).
    MMLogger.get_instance('test_zero_shot_warns_once')
    names = tmp_path / 'names.txt'
    names.write_text('first\nsecond\n')
    folder = osp.join(osp.dirname(osp.dirname(checkpoint)), 'data', 'train')
    cores = len(os.sched_getaffinity(0))
    run_tool('analysis/zero_shot.py', config, checkpoint, '--imagenet',
             folder, '--class-names', names, '--templates', 'simple',
             '--num-workers', cores + 1, '--batch-size', 2)
    too_many = [w for w in recwarn
                if 'This DataLoader will create' in str(w.message)]
    assert len(too_many) == 1  # torch: at every loader start, per encoder
