"""The demo (README command 1): the paper config shrunk; a short console with
the complete log in the work dir; loss and held-out alignment curves and
attention maps on real photographs at the end; exact resume; a clear error
for a bad image.

The demo runs as a user runs it (``python tools/demo.py`` in a fresh
folder), made tiny with ``--cfg-options`` only: a 1-block student, a 1-block
CLIP teacher (random: its weight file does not exist, so the demo config
falls back loudly), the demo's own data, pipeline, schedule and hooks.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
from glob import glob

import pytest
from mmengine.config import Config
from PIL import Image
from reliability_tiny import logged_losses

from mvp_mm.utils import HELD_OUT_PHOTOS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'tools', 'demo.py')
TRAIN = osp.join(REPO, 'tools', 'train.py')
DEMO_CFG = osp.join(REPO, 'configs', 'pretrain',
                    'mvp_vit-tiny-p16_6e_demo.py')
PAPER_CFG = osp.join(REPO, 'configs', 'pretrain', 'mvp_vit-b16_300e_in1k.py')

# Tiny models at the demo's 224 px, so that its pipeline runs unchanged.
TINY = dict(model=dict(
    backbone=dict(arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                            feedforward_channels=64)),
    target_generator=dict(
        pretrained='no/such/clip.pt',
        model_overrides=dict(
            embed_dim=16,
            vision_cfg=dict(image_size=224, layers=1, width=32,
                            patch_size=16, head_width=16),
            text_cfg=dict(context_length=8, vocab_size=100, width=16,
                          heads=2, layers=1)))))
EPOCHS, ITERS_PER_EPOCH = 6, 5  # the demo config's schedule
CONSOLE_LIMIT = 150  # lines (issue 12)


def _options(tree: dict, prefix: str = ''):
    """``--cfg-options`` strings for a nested dict."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _options(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}={value}'


def _env() -> dict:
    # The subprocess imports this checkout's mvp_mm (and tests' helpers).
    path = [REPO, osp.join(REPO, 'tests'), os.environ.get('PYTHONPATH', '')]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)),
                HF_HUB_OFFLINE='1')


def _run(args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=600)


def _run_demo(cwd) -> subprocess.CompletedProcess:
    return _run([DEMO, '--cfg-options', *_options(TINY)], cwd)


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """One tiny demo run in a fresh folder: (folder, completed process)."""
    cwd = tmp_path_factory.mktemp('demo')
    return cwd, _run_demo(cwd)


def test_demo_config_is_the_paper_config_shrunk():
    demo, paper = Config.fromfile(DEMO_CFG), Config.fromfile(PAPER_CFG)
    # Same per-sample seeding, checked loading, crops, masks and sampler.
    assert demo.train_dataloader.dataset.pipeline == paper.train_pipeline
    assert demo.train_dataloader.sampler == paper.train_dataloader.sampler
    assert demo.train_dataloader.collate_fn == \
        paper.train_dataloader.collate_fn
    assert demo.test_dataloader.dataset.pipeline == paper.test_pipeline
    # Same reliability hooks, plus the held-out alignment and k-NN.
    assert demo.custom_hooks[:-2] == paper.custom_hooks
    assert [h.type for h in demo.custom_hooks[-2:]] == [
        'MVPAlignmentHook', 'KNNMonitorHook']
    assert demo.default_hooks.checkpoint.type == \
        paper.default_hooks.checkpoint.type
    assert demo.randomness == paper.randomness
    # Same algorithm, head, loss, teacher (allowed to fall back), optimizer.
    for key in ('type', 'head'):
        assert demo.model[key] == paper.model[key]
    teacher = dict(demo.model.target_generator)
    assert teacher.pop('fallback_to_random') is True
    assert teacher == paper.model.target_generator
    assert demo.data_preprocessor == paper.data_preprocessor
    student = dict(demo.model.backbone, arch=paper.model.backbone.arch)
    assert student == paper.model.backbone  # only the size differs
    optimizer = dict(demo.optim_wrapper.optimizer, lr=1.5e-3)
    assert optimizer == paper.optim_wrapper.optimizer  # only the lr differs
    assert demo.optim_wrapper.paramwise_cfg == \
        paper.optim_wrapper.paramwise_cfg


def test_demo_console_is_short_and_the_log_complete(demo_run):
    cwd, run = demo_run
    assert run.returncode == 0, run.stderr[-3000:]
    console = (run.stdout + run.stderr).splitlines()
    assert len(console) < CONSOLE_LIMIT, '\n'.join(console)
    text = '\n'.join(console)
    # A progress line per epoch, the fallback said loudly, no noise.
    for epoch in range(1, EPOCHS + 1):
        assert f'epoch {epoch}/{EPOCHS}  ' in text
    assert 'RANDOMLY INITIALISED' in text
    for noise in ('Warning', 'INFO', 'Config:', 'paramwise_options',
                  'Hooks will be executed', 'FileClient'):
        assert noise not in text, noise

    # mmengine's full log: environment, config, hooks, every iteration.
    logs = glob(str(cwd / 'work_dirs' / 'mvp_demo' / '*' / '*.log'))
    assert len(logs) == 1
    with open(logs[0]) as f:
        log = f.read()
    for entry in ('System environment', 'Config:', "type='ApplySampleSeed'",
                  "type='SeededSampler'", 'Hooks will be executed',
                  'paramwise_options', 'Saving checkpoint at',
                  f'Epoch(train) [{EPOCHS}][{ITERS_PER_EPOCH}/'
                  f'{ITERS_PER_EPOCH}]',
                  f'Held-out alignment at iter {EPOCHS * ITERS_PER_EPOCH}',
                  f'k-NN accuracy (%) at epoch {EPOCHS} (k=20, T=0.07, 30 '
                  'memory / 20 query images'):
        assert entry in log, entry
    # mmengine's notice about the FileClient it never uses is dropped at
    # its source (AtomicCheckpointHook), not only from the console.
    assert '"FileClient" will be deprecated' not in log


def test_demo_learns_and_ends_with_pictures(demo_run):
    cwd, run = demo_run
    assert run.returncode == 0, run.stderr[-3000:]
    work = cwd / 'work_dirs' / 'mvp_demo'
    scalars = glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    with open(scalars[0]) as f:
        rows = [json.loads(line) for line in f]
    losses = [r['loss'] for r in rows if 'loss' in r]
    alignment = [r['alignment/masked'] for r in rows
                 if 'alignment/masked' in r]
    assert len(losses) == EPOCHS * ITERS_PER_EPOCH
    assert len(alignment) == EPOCHS
    first, last = losses[:ITERS_PER_EPOCH], losses[-ITERS_PER_EPOCH:]
    assert sum(last) < sum(first)  # the loss goes down...
    assert alignment[-1] > alignment[0]  # ...and held-out alignment up
    # k-NN on the labelled faces / non-faces after epochs 3 and 6
    knn = [r for r in rows if 'knn/cls_top1' in r]
    assert [r['step'] for r in knn] == [3 * ITERS_PER_EPOCH,
                                        EPOCHS * ITERS_PER_EPOCH]
    assert all(0 <= r['knn/patch_mean_top1'] <= 100 for r in knn)
    assert 'k-NN top-1: cls ' in run.stdout

    with Image.open(work / 'curves.png') as curves:
        # loss, alignment, k-NN
        assert curves.format == 'PNG' and curves.size == (1500, 400)
        assert len(curves.getcolors(1 << 20)) > 20  # drawn, not blank
    with Image.open(work / 'attention.png') as attention:
        # One column per held-out photo: the photo over its attention.
        assert attention.format == 'PNG'
        assert attention.width == 224 * len(HELD_OUT_PHOTOS)
        assert len(attention.getcolors(1 << 20)) > 1000
    held_out = sorted(os.listdir(cwd / 'data' / 'mvp_demo' / 'val'))
    assert held_out == sorted(f'{label}.JPEG'
                              for _, label in HELD_OUT_PHOTOS)
    for path in ('curves.png', 'attention.png', 'epoch_6.pth'):
        assert str(work / path) in run.stdout


def test_demo_names_an_empty_image(demo_run, tmp_path):
    """A zero-byte JPEG (a failed copy) is an error that names the file."""
    cwd, _ = demo_run
    shutil.copytree(cwd / 'data', tmp_path / 'data')
    bad = sorted(glob(str(tmp_path / 'data' / 'mvp_demo' / 'train' / '*' /
                          '*.JPEG')))[5]
    open(bad, 'wb').close()
    run = _run_demo(tmp_path)
    assert run.returncode != 0
    # The config's data_root is relative to the working directory.
    assert 'ValueError' in run.stderr
    assert osp.relpath(bad, tmp_path) in run.stderr


def test_demo_data_is_checked_before_use(demo_run, monkeypatch):
    """Images of an older demo (or the user's) are never trained on or
    overwritten silently; the demo's own folder is reused as written."""
    cwd, _ = demo_run
    monkeypatch.syspath_prepend(osp.join(REPO, 'tools'))
    from demo import prepare_data
    root = cwd / 'data' / 'mvp_demo'
    photos = prepare_data(str(root))
    assert [osp.basename(p) for p in photos] == sorted(
        f'{label}.JPEG' for _, label in HELD_OUT_PHOTOS)

    stale = root.parent / 'stale'
    shutil.copytree(root, stale)
    os.remove(stale / 'demo_files.txt')  # as an older demo's folder
    with pytest.raises(RuntimeError, match='Move or delete the folder'):
        prepare_data(str(stale))
    shutil.copy(root / 'demo_files.txt', stale)
    extra = stale / 'train' / 'n00000000' / 'extra.JPEG'
    extra.write_bytes(b'')  # a file the demo did not write
    with pytest.raises(RuntimeError, match='Move or delete the folder'):
        prepare_data(str(stale))
    assert extra.exists()


def test_demo_config_resumes_exactly(demo_run, tmp_path):
    """Killed in epoch 2 and resumed from epoch 1's checkpoint, the demo
    config re-trains the first 3 iterations of epoch 2 with the losses of
    the uninterrupted run."""
    cwd, _ = demo_run
    data_root = str(cwd / 'data' / 'mvp_demo') + os.sep
    cfg = Config.fromfile(DEMO_CFG)
    cfg.merge_from_dict(TINY)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.max_epochs = 2
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.test_dataloader.dataset.data_root = data_root
    for hook in cfg.custom_hooks:
        if 'dataloader' in hook:  # the held-out alignment
            hook.dataloader.dataset.data_root = data_root
        if 'memory' in hook:  # the k-NN sets
            hook.memory.data_root = hook.query.data_root = data_root + 'knn'
    cfg.dump(str(tmp_path / 'resume.py'))
    cfg.custom_imports.imports.append('reliability_test_hooks')
    kill_after = ITERS_PER_EPOCH + 3
    cfg.custom_hooks.append(
        dict(type='KillAtIterationHook', iteration=kill_after))
    cfg.dump(str(tmp_path / 'kill.py'))

    killed = _run([TRAIN, str(tmp_path / 'kill.py')], tmp_path)
    assert killed.returncode == -9, killed.stderr[-3000:]
    uninterrupted = {r['iter']: r['loss'] for r in logged_losses(cfg.work_dir)}
    assert sorted(uninterrupted) == list(range(1, kill_after + 1))

    resumed = _run([TRAIN, str(tmp_path / 'resume.py'), '--resume'],
                   tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = logged_losses(cfg.work_dir)[kill_after:]
    assert [r['iter'] for r in after] == list(
        range(ITERS_PER_EPOCH + 1, 2 * ITERS_PER_EPOCH + 1))
    for row in after:
        if row['iter'] <= kill_after:
            assert row['loss'] == pytest.approx(uninterrupted[row['iter']],
                                                abs=1e-6)
    # No warning that augmentations would differ after the resume.
    assert 'not seeded per sample' not in resumed.stdout
