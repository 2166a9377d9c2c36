"""tools/train.py --accumulate N: batch 4 x 2 accumulated trains as batch 8
(losses, lr per optimizer step, weights), --auto-scale-lr scales the lr to
the effective batch (mmengine's Runner ignores the accumulation: an
error), iteration-based schedules take one value per optimizer step."""
import glob
import itertools
import runpy

import mmengine.config.config as config_module
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.optim.scheduler import LinearLR
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from reliability_tiny import TRAIN
from tiny import PRETRAIN_CFG, run_tool, tiny_pretrain_cfg

from mvp_mm.engine import OptimizerStepParamSchedulerHook
from mvp_mm.utils import make_imagenet_folder

LR = Config.fromfile(PRETRAIN_CFG).optim_wrapper.optimizer.lr
RUNS = itertools.count()  # runners built within a second get own loggers


@pytest.fixture(autouse=True)
def _unformatted_config_text(monkeypatch):
    """mmengine formats each config it logs and dumps with yapf, which took
    most of these tiny runs' time; unformatted, the text holds the same
    config."""
    monkeypatch.setattr(config_module, 'FormatCode',
                        lambda text, **kwargs: (text, None))


class _Record(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.lrs = [], []

    def before_train(self, runner):
        self.start = {
            k: v.clone()
            for k, v in runner.model.state_dict().items()
        }

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(runner.optim_wrapper.get_lr()['lr'][0])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append(outputs['loss'].item())


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    """The pre-training config, tiny, as a file: 16 images, 1 epoch, no
    drop path (its draws depend on the batch), a cosine lr decay over the
    epoch (to 0 at its end), auto_scale_lr for a base batch of 16."""
    root = tmp_path_factory.mktemp('accumulate')
    make_imagenet_folder(str(root / 'in'), 4, 4, 80)
    cfg = tiny_pretrain_cfg(str(root / 'in'), str(root / 'work'),
                            batch_size=8)
    cfg.model.backbone.drop_path_rate = 0.
    cfg.train_cfg = dict(type=Config.fromfile(PRETRAIN_CFG).train_cfg.type,
                         max_epochs=1)
    cfg.default_hooks.checkpoint.update(by_epoch=True, save_last=False)
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=0,
             end=1, convert_to_iter_based=True)
    ]
    cfg.auto_scale_lr.base_batch_size = 16
    path = str(root / 'cfg.py')
    cfg.dump(path)
    return path


def _load(config: str, *args: str) -> Config:
    """The config as `tools/train.py CONFIG --auto-scale-lr ARGS` makes it."""
    train = runpy.run_path(TRAIN)
    cfg = train['load_config'](train['parse_args'](
        [config, '--auto-scale-lr', *args]))
    cfg.experiment_name = f'accumulate_{next(RUNS)}'
    return cfg


def _train(cfg: Config):
    runner = RUNNERS.build(cfg)  # what tools/train.py does
    record = _Record()
    runner.register_hook(record)
    runner.train()
    with open(runner.logger.log_file) as f:
        log = f.read()
    return record, runner.model.state_dict(), log


def test_accumulated_half_batches_train_like_the_full_batch(config):
    full, want, full_log = _train(_load(config))
    half, got, half_log = _train(_load(
        config, '--accumulate', '2', '--cfg-options',
        'train_dataloader.batch_size=4'))
    assert 'Effective batch 8 = 1 process(es) x 8 x 1 accumulated; lr ' \
        f'{LR * 8 / 16:.6g} = the configured lr x 8 / 16' in full_log
    assert 'Effective batch 8 = 1 process(es) x 4 x 2 accumulated; lr ' \
        f'{LR * 8 / 16:.6g} = the configured lr x 8 / 16' in half_log
    assert '4 iterations = 2 optimizer steps' in half_log
    assert 'straddle' not in half_log  # 4 batches an epoch, windows of 2

    # lr: scaled to the effective batch 8, the cosine's value at each
    # optimizer step (1/2 of it at the second), the same for both batches
    # of a window
    assert full.lrs == pytest.approx([LR * 8 / 16, LR * 8 / 16 / 2])
    assert half.lrs == pytest.approx(
        [lr for lr in full.lrs for _ in range(2)], rel=1e-6)
    # the loss of a batch of 8 is the mean of its two halves'
    assert full.losses == pytest.approx(
        [(a + b) / 2 for a, b in zip(half.losses[::2], half.losses[1::2])],
        rel=1e-5)
    assert full.losses[0] != pytest.approx(full.losses[1], rel=1e-5)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5,
                                   atol=1e-6, msg=key)
    assert any(not torch.equal(want[key], full.start[key]) for key in want)


def test_auto_scale_lr_counts_accumulated_batches(config):
    """4 x 3 accumulated: lr x 12 / 16; 4 batches an epoch split a window
    of 3, which the log says."""
    cfg = _load(config, '--accumulate', '3', '--cfg-options',
                'train_dataloader.batch_size=4')
    runner = RUNNERS.build(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(runner.optim_wrapper, runner.auto_scale_lr)  # as train()
    lrs = runner.optim_wrapper.get_lr()['lr']
    assert lrs == pytest.approx([LR * 12 / 16] * len(lrs))
    with open(runner.logger.log_file) as f:
        log = f.read()
    assert 'Effective batch 12 = 1 process(es) x 4 x 3 accumulated; lr ' \
        f'{LR * 12 / 16:.6g}' in log
    assert 'An epoch has 4 batches, not a multiple of ' \
        'accumulative_counts=3' in log


def test_mmengine_runner_with_accumulation_and_auto_scale_lr_is_an_error(
        config):
    cfg = _load(config, '--accumulate', '2')
    with pytest.raises(RuntimeError,
                       match=r'scaled the lr for a batch of 8, not the '
                       r"effective 16.*runner_type='EffectiveBatchRunner'"):
        Runner.from_cfg(cfg).train()


def test_train_tool_scales_for_a_config_without_runner_type(config,
                                                            tmp_path):
    """tools/train.py builds EffectiveBatchRunner when the config names no
    runner (a user's own config)."""
    cfg = Config.fromfile(config)
    cfg.pop('runner_type')
    path = str(tmp_path / 'no_runner_type.py')
    cfg.dump(path)
    work = tmp_path / 'work'
    run_tool('train.py', path, '--work-dir', work, '--auto-scale-lr',
             '--accumulate', '2', '--cfg-options',
             'train_dataloader.batch_size=4', 'experiment_name=plain')
    log, = glob.glob(str(work / '*' / '*.log'))
    with open(log) as f:
        assert 'Effective batch 8 = 1 process(es) x 4 x 2 accumulated; lr ' \
            f'{LR * 8 / 16:.6g}' in f.read()


class _ToyRunner:
    """What the hook reads of a runner: a real optimizer wrapper that
    accumulates 2 batches, a by-iteration warm-up over 6 iterations."""

    def __init__(self, accumulate: int):
        self.param = torch.nn.Parameter(torch.ones(1))
        self.optim_wrapper = OptimWrapper(
            torch.optim.SGD([self.param], lr=1.0),
            accumulative_counts=accumulate)
        self.optim_wrapper.initialize_count_status(torch.nn.Linear(1, 1), 0,
                                                   6)
        self.param_schedulers = [
            LinearLR(self.optim_wrapper, start_factor=0.1, by_epoch=False,
                     begin=0, end=6)
        ]
        self.iter, self.auto_scale_lr = 0, None

    def run(self, hook) -> list:
        """The lr of each iteration."""
        hook.before_train(self)
        lrs = []
        for self.iter in range(6):
            lrs.append(self.optim_wrapper.get_lr()['lr'][0])
            self.optim_wrapper.update_params((self.param**2).sum())
            hook.after_train_iter(self, self.iter)
        return lrs


def test_iteration_schedules_take_one_value_per_optimizer_step():
    every_iteration = _ToyRunner(accumulate=1).run(
        OptimizerStepParamSchedulerHook())
    assert len(set(every_iteration)) == 6  # the warm-up, as mmengine's hook
    windows = _ToyRunner(accumulate=2).run(OptimizerStepParamSchedulerHook())
    # each window of 2 iterations (and its optimizer step) uses the value at
    # its first iteration
    assert windows == [every_iteration[i - i % 2] for i in range(6)]
