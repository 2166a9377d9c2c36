"""--resume from a checkpoint taken inside an epoch continues that epoch at
its next batch: the same samples, losses, lr and final weights as the
uninterrupted run (bit for bit, 2 data-loader workers), the same iteration
count and epoch ends; the samples already trained are skipped by the
sampler, never loaded. Pre-training and fine-tuning configs."""
import os
import os.path as osp
import shutil

import pytest
import mmengine.config.config as config_module
import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from reliability_tiny import reliable_tiny_cfg
from tiny import PRETRAIN_CFG
from tiny_downstream import CLS_FINETUNE, tiny_classification_cfg

from mmpretrain.registry import TRANSFORMS
from mvp_mm.datasets import ResumableSampler
from mvp_mm.engine import resolve_resume
from mvp_mm.engine.loops.resumable_epoch_loop import EPOCH_START_KEY
from mvp_mm.utils import make_imagenet_folder

# 12 training images, batch 4: 3 iterations an epoch, 2 epochs. The
# checkpoint at iteration 4 is one batch into epoch 2.
EPOCHS, CKPT_AT, BATCHES = 2, 4, 3


@pytest.fixture(autouse=True)
def _unformatted_config_text(monkeypatch):
    """mmengine formats each config it logs, dumps and checkpoints with yapf,
    which took most of these tiny runs' time; unformatted, the text holds
    the same config."""
    monkeypatch.setattr(config_module, 'FormatCode',
                        lambda text, **kwargs: (text, None))


@TRANSFORMS.register_module(force=True)
class RecordLoadedIndex(BaseTransform):
    """Appends each sample index the pipeline processes to ``path`` (from
    every data worker)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def transform(self, results: dict) -> dict:
        with open(self.path, 'a') as f:
            f.write(f'{int(results["sample_idx"])}\n')
        return results


class _Record(Hook):
    """Per iteration: (iteration, batch index, loss, lrs, sample indices);
    per epoch end and validation: the iteration."""

    priority = 'LOWEST'

    def __init__(self):
        self.iters, self.epoch_ends, self.vals = [], [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        samples = [int(s.sample_idx) for s in data_batch['data_samples']]
        self.iters.append((runner.iter + 1, batch_idx, outputs['loss'].item(),
                           runner.optim_wrapper.get_lr()['lr'], samples))

    def after_train_epoch(self, runner):
        self.epoch_ends.append(runner.iter)

    def after_val_epoch(self, runner, metrics=None):
        self.vals.append(runner.iter)


def _exact_resume_setup(cfg: Config, config: str, loaded: str) -> Config:
    """The config's own train loop, 2 epochs, a checkpoint at iteration 4,
    an lr that changes every iteration, loaded samples recorded."""
    cfg.train_cfg = dict(type=Config.fromfile(config).train_cfg.type,
                         max_epochs=EPOCHS)
    cfg.default_hooks.checkpoint.update(by_epoch=False, interval=CKPT_AT,
                                        save_last=False)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
             end=EPOCHS, convert_to_iter_based=True)
    ]
    loader = cfg.train_dataloader
    # workers that exit at each epoch's end: persistent ones are shut down
    # when the garbage collector finds the runner, where torch waits 5 s
    # for each to exit
    loader.update(num_workers=2, persistent_workers=False)
    loader.dataset.pipeline.insert(1, dict(type='RecordLoadedIndex',
                                           path=loaded))
    return cfg


def _train(cfg: Config):
    """The run's records and its final weights."""
    runner = Runner.from_cfg(cfg)
    record = _Record()
    runner.register_hook(record)
    runner.train()
    assert (runner.iter, runner.epoch) == (EPOCHS * BATCHES, EPOCHS)
    return record, runner.model.state_dict()


def _loaded(path: str) -> list:
    with open(path) as f:
        return sorted(int(line) for line in f)


def _assert_resumed_exactly(make_cfg, config, tmp_path):
    """Train uninterrupted; resume a copy of its mid-epoch iter_4.pth with
    ``--resume`` (auto) in a fresh work dir; compare."""
    full = _exact_resume_setup(make_cfg(str(tmp_path / 'full')), config,
                               str(tmp_path / 'full_loaded.txt'))
    uninterrupted, want = _train(full)
    assert [i[0] for i in uninterrupted.iters] == list(range(1, 7))

    os.makedirs(tmp_path / 'resumed')
    shutil.copy2(tmp_path / 'full' / f'iter_{CKPT_AT}.pth',
                 tmp_path / 'resumed')
    loaded = str(tmp_path / 'resumed_loaded.txt')
    cfg = _exact_resume_setup(make_cfg(str(tmp_path / 'resumed')), config,
                              loaded)
    cfg.resume, cfg.load_from = True, None  # `tools/train.py --resume`
    resolve_resume(cfg)
    assert cfg.load_from == str(tmp_path / 'resumed' / f'iter_{CKPT_AT}.pth')
    resumed, got = _train(cfg)

    # iterations 5 and 6, batches 2 and 3 of epoch 2: same samples, same
    # losses and lr, bit for bit
    assert resumed.iters == uninterrupted.iters[CKPT_AT:]
    assert [i[1] for i in resumed.iters] == [1, 2]
    # the batch of iteration 4 (epoch 2's first) was never loaded
    assert _loaded(loaded) == sorted(
        s for i in uninterrupted.iters[CKPT_AT:] for s in i[4])
    assert resumed.epoch_ends == [EPOCHS * BATCHES]
    assert uninterrupted.epoch_ends == [BATCHES, EPOCHS * BATCHES]
    assert resumed.vals == [v for v in uninterrupted.vals if v > CKPT_AT]
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_pretraining_resumes_mid_epoch_exactly(tmp_path):
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 3, 4, 80)
    _assert_resumed_exactly(lambda work: reliable_tiny_cfg(data, work),
                            PRETRAIN_CFG, tmp_path)


def test_fine_tuning_resumes_mid_epoch_exactly(tmp_path):
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 2, 6, 80, split='train')
    make_imagenet_folder(data, 2, 1, 80, split='val', seed=1)

    def make_cfg(work):
        cfg = tiny_classification_cfg(CLS_FINETUNE, data, work, '')
        cfg.model.backbone.init_cfg = None  # random init: no file needed
        cfg.randomness = dict(seed=0, deterministic=True)
        return cfg

    _assert_resumed_exactly(make_cfg, CLS_FINETUNE, tmp_path)


def test_resumable_sampler_starts_one_pass_part_way():
    sampler = ResumableSampler(list(range(10)), seed=3)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.set_start(4)
    assert list(sampler) == full[4:] and len(sampler) == 10
    assert list(sampler) == full  # the next pass: from the start
    with pytest.raises(ValueError, match=r'in \[0, 10\]'):
        sampler.set_start(11)


def _loop_resumed_at(tmp_path, start: dict, sampler='SeededSampler'):
    """A built ResumableEpochBasedTrainLoop as --resume leaves it at
    iteration 4 (epoch 2), with ``start`` as the checkpoint's record."""
    data = str(tmp_path / 'in')
    make_imagenet_folder(data, 3, 4, 80)
    cfg = reliable_tiny_cfg(data, str(tmp_path / 'work'))
    cfg.train_cfg = dict(type='ResumableEpochBasedTrainLoop',
                         max_epochs=EPOCHS)
    cfg.train_dataloader.sampler.type = sampler
    cfg.experiment_name = f'loop_{tmp_path.name}'  # own logger
    runner = Runner.from_cfg(cfg)
    loop = runner.train_loop
    loop._epoch, loop._iter = 1, CKPT_AT
    if start is not None:
        runner.message_hub.update_info(EPOCH_START_KEY, start)
    return loop


def test_mid_epoch_resume_needs_a_sampler_that_starts_part_way(tmp_path):
    loop = _loop_resumed_at(tmp_path, dict(epoch=1, iter=3, batches=3),
                            sampler='DefaultSampler')
    with pytest.raises(TypeError, match="sampler=dict.type='SeededSampler'"):
        loop.run()


def test_mid_epoch_resume_with_another_epoch_length_is_an_error(tmp_path):
    loop = _loop_resumed_at(tmp_path, dict(epoch=1, iter=3, batches=5))
    with pytest.raises(ValueError, match='1 batches into epoch 2, of 5'):
        loop.run()


def test_epoch_checkpoint_and_mmengine_checkpoints_locate(tmp_path):
    """An epoch's end resumes at the next epoch's start, the last batch of
    an epoch at that epoch's end; a checkpoint of mmengine's own loop (no
    record) at iter - epoch x batches."""
    loop = _loop_resumed_at(tmp_path, dict(epoch=0, iter=0, batches=3))
    assert loop._batches_done_in_epoch() == 0
    # saved after epoch 2's last batch, before its end: only the end is left
    loop._iter = 6
    loop.runner.message_hub.update_info(EPOCH_START_KEY,
                                        dict(epoch=1, iter=3, batches=3))
    assert loop._batches_done_in_epoch() == 3
    loop._iter = CKPT_AT
    loop.runner.message_hub.pop_info(EPOCH_START_KEY)
    assert loop._batches_done_in_epoch() == 1


def test_resume_finds_an_iter_checkpoint_beside_epoch_checkpoints(tmp_path):
    """An epoch-checkpointed run whose newest checkpoint was taken inside an
    epoch (iter_5.pth, saved after epoch_1.pth, which last_checkpoint
    names): `--resume` continues from iter_5.pth."""
    work = str(tmp_path)
    for name, written in (('epoch_1.pth', 1e9), ('iter_5.pth', 2e9)):
        torch.save({}, osp.join(work, name))
        os.utime(osp.join(work, name), (written, written))
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_1.pth'))
    cfg = Config(dict(resume=True, load_from=None, work_dir=work,
                      default_hooks=dict(checkpoint=dict(by_epoch=True))))
    resolve_resume(cfg)
    assert cfg.load_from == osp.join(work, 'iter_5.pth')
    os.remove(osp.join(work, 'last_checkpoint'))  # never recorded
    cfg.load_from = None
    resolve_resume(cfg)
    assert cfg.load_from == osp.join(work, 'iter_5.pth')
