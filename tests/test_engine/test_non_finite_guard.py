"""Nothing non-finite is ever loaded or saved (issue #11, points 1 and 2).

- A checkpoint with one Inf element or a NaN tensor is refused, the tensor
  named, by every reader: the downstream backbones (fine-tuning, linear
  probing, UperNet), the timm export, the analysis reader, and runner loads
  (``--resume``, ``load_from``, ``tools/test.py``).
- ``NonFiniteGuardHook`` (in every config) stops a run before a step with a
  NaN loss, a NaN gradient or exploded weights is saved, and names the last
  checkpoint with finite weights; under AMP a skipped step stays a counted
  skip.

Tiny models, generated data in the real on-disk formats, real runners.
"""
import glob
import os.path as osp
import re
import runpy
import sys
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from tiny import REPO, run_tool, tiny_pretrain_cfg
from tiny_downstream import (CLS_FINETUNE, CLS_LINEAR, SEG_UPERNET,
                             tiny_classification_cfg, tiny_mvp_pretrain_cfg,
                             tiny_segmentation_cfg)

from mmpretrain.registry import MODELS
from mvp_mm.analysis import load_state_dict
from mvp_mm.engine import NonFiniteGuardHook
from mvp_mm.engine.hooks import non_finite_guard_hook
from mvp_mm.utils import (check_finite_state_dict, describe_non_finite,
                          make_ade20k_folder, make_imagenet_folder)

INF_KEY = 'backbone.layers.1.attn.qkv.weight'
NAN_KEY = 'backbone.cls_token'
# What the errors say about the poisoned tensors (tiny: 32 wide).
INF_TENSOR = f'{INF_KEY} (float32, [96, 32]): 0 nan, 1 inf'
NAN_TENSOR = f'{NAN_KEY} (float32, [1, 1, 32]): 32 nan, 0 inf'


# ------------------------------------------------------------ data
@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet_folder(root, 2, 4, 80, split='train')
    make_imagenet_folder(root, 2, 2, 80, split='val', seed=1)
    return root


@pytest.fixture(scope='module')
def ade20k(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ADEChallengeData2016'))
    make_ade20k_folder(root, num_train=4, num_val=2, image_size=(96, 128))
    return root


@pytest.fixture(scope='module')
def pretrained(imagenet, tmp_path_factory):
    """A runner checkpoint of tiny MVP pre-training (4 layers, 2 iters)."""
    work_dir = str(tmp_path_factory.mktemp('pretrain'))
    Runner.from_cfg(tiny_mvp_pretrain_cfg(imagenet, work_dir)).train()
    return osp.join(work_dir, 'iter_2.pth')


def _poison(path: str, out: str, key: str, nan_tensor: bool) -> str:
    checkpoint = torch.load(path)
    value = checkpoint['state_dict'][key]
    if nan_tensor:
        value.fill_(float('nan'))
    else:
        value.view(-1)[5] = float('inf')
    torch.save(checkpoint, out)
    return out


@pytest.fixture(scope='module')
def poisoned(pretrained, tmp_path_factory):
    """``pretrained`` with one Inf element / with a NaN tensor."""
    folder = tmp_path_factory.mktemp('poisoned')
    return dict(
        inf=_poison(pretrained, str(folder / 'iter_2_inf.pth'), INF_KEY,
                    nan_tensor=False),
        nan=_poison(pretrained, str(folder / 'iter_2_nan.pth'), NAN_KEY,
                    nan_tensor=True))


# ------------------------------------------------------------ loading
@pytest.mark.parametrize('config, kind', [(CLS_FINETUNE, 'inf'),
                                          (SEG_UPERNET, 'nan')],
                         ids=['fine-tune', 'upernet'])
def test_downstream_backbones_refuse_a_non_finite_checkpoint(
        config, kind, poisoned, imagenet, ade20k, tmp_path):
    """MVPBEiTViT (fine-tuning; linear probing builds the same backbone)
    and MVPBEiT (UperNet) from a real config: the run stops before
    training, the tensor named."""
    path = poisoned[kind]
    if config == SEG_UPERNET:
        cfg = tiny_segmentation_cfg(config, ade20k, str(tmp_path), path)
    else:
        cfg = tiny_classification_cfg(config, imagenet, str(tmp_path), path)
    with pytest.raises(ValueError) as error:
        Runner.from_cfg(cfg).train()
    message = str(error.value)
    assert f"The checkpoint '{path}' holds NaN/Inf in 1 tensor(s)" in message
    assert (INF_TENSOR if kind == 'inf' else NAN_TENSOR) in message
    assert 'earlier checkpoint' in message and '--pretrained' in message
    assert not glob.glob(osp.join(str(tmp_path), '*.pth'))


def test_export_and_analysis_refuse_a_non_finite_checkpoint(poisoned,
                                                            tmp_path):
    out = str(tmp_path / 'mvp.safetensors')
    with pytest.raises(ValueError, match=re.escape(NAN_TENSOR)):
        run_tool('export_timm.py', poisoned['nan'], out)
    assert not osp.exists(out)
    with pytest.raises(ValueError) as error:
        load_state_dict(poisoned['inf'])
    assert INF_TENSOR in str(error.value)
    assert 'tools/train.py wrote' in str(error.value)


def test_resume_and_test_tool_refuse_a_non_finite_checkpoint(
        poisoned, imagenet, tmp_path, monkeypatch):
    """Runner loads of a pre-training config: the guard's load check
    (tools/test.py loads through the runner's load_from)."""
    cfg = tiny_mvp_pretrain_cfg(imagenet, str(tmp_path / 'work'))
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    train = osp.join(REPO, 'tools', 'train.py')
    monkeypatch.setattr(sys, 'argv', [train, config, '--resume',
                                      poisoned['inf']])
    with pytest.raises(ValueError) as error:
        runpy.run_path(train, run_name='__main__')
    message = str(error.value)
    assert f"The checkpoint '{poisoned['inf']}' holds NaN/Inf" in message
    assert INF_TENSOR in message and 'Resume from an earlier' in message

    with pytest.raises(ValueError, match=re.escape(NAN_TENSOR)):
        run_tool('test.py', config, poisoned['nan'], '--work-dir',
                 str(tmp_path / 'test'))
    assert not glob.glob(str(tmp_path / 'work' / '*.pth'))


def test_fine_tuned_checkpoint_with_nan_is_refused_by_the_test_tool(
        pretrained, imagenet, tmp_path):
    """The downstream configs carry the load check too."""
    cfg = tiny_classification_cfg(CLS_FINETUNE, imagenet,
                                  str(tmp_path / 'work'), pretrained)
    init_default_scope('mmpretrain')
    state = MODELS.build(cfg.model).state_dict()  # a fine-tuned classifier
    state['head.fc.weight'].fill_(float('nan'))
    bad = str(tmp_path / 'bad.pth')
    torch.save(dict(meta=dict(), state_dict=state), bad)
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    with pytest.raises(ValueError, match=re.escape(
            'head.fc.weight (float32, [2, 32]): 64 nan, 0 inf')):
        run_tool('test.py', config, bad, '--work-dir', str(tmp_path / 't'))


# ------------------------------------------------------------ training
class _NanGradient(Hook):
    """Iteration ``iteration`` (1-based) gets a NaN in the gradient of the
    first trained parameter: a finite loss, a NaN step."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration
        self.handle = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 != self.iteration:
            return
        param = next(p for p in runner.model.parameters() if p.requires_grad)

        def poison(grad):
            grad = grad.clone()
            grad.view(-1)[0] = float('nan')
            return grad

        self.handle = param.register_hook(poison)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


class _LrSpike(Hook):
    """Iteration ``iteration`` (1-based) steps with lr ``lr``: finite but
    exploded weights."""

    def __init__(self, iteration: int, lr: float) -> None:
        self.iteration, self.lr = iteration, lr

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            for group in runner.optim_wrapper.param_groups:
                group['lr'] = self.lr


def _epoch_pretrain_cfg(data_root: str, work_dir: str, clip_grad=True):
    """The pre-training config tiny but epoch-based as the real one: 2
    epochs of 2 iterations, a checkpoint every epoch."""
    cfg = tiny_pretrain_cfg(data_root, work_dir)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
    cfg.default_hooks.checkpoint.update(by_epoch=True, interval=1)
    cfg.log_processor = dict(by_epoch=True)
    if not clip_grad:
        cfg.optim_wrapper.clip_grad = None
    return cfg


def _train(cfg, *hooks):
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()


@pytest.mark.parametrize('clip_grad', [True, False],
                         ids=['clip_grad', 'no-clip_grad'])
def test_nan_gradient_on_the_last_iteration_of_an_epoch_is_never_saved(
        clip_grad, imagenet, tmp_path):
    """With clip_grad the gradient norm stops the step itself; without it
    the weight check before the epoch checkpoint does. Either way the
    message names epoch_1.pth, and after a --resume the file resumed from."""
    work = tmp_path / 'work'
    cfg = _epoch_pretrain_cfg(imagenet, str(work), clip_grad)
    with pytest.raises(RuntimeError) as error:
        _train(cfg, _NanGradient(iteration=4))
    message = str(error.value)
    if clip_grad:
        assert message.startswith(
            'Non-finite gradient norm (nan) at iteration 4 (epoch 2), with '
            'a finite loss')
    else:
        assert message.startswith(
            'Refusing to save the checkpoint after iteration 4: NaN/Inf in')
        assert 'backbone.cls_token (float32, [1, 1, 32])' in message
    first = str(work / 'epoch_1.pth')
    assert (f'The last checkpoint with finite weights is {first}: after the '
            f'fix, rerun with `--resume {first}`') in message
    assert sorted(osp.basename(p) for p in glob.glob(str(work / '*.pth*'))) \
        == ['epoch_1.pth']
    assert (work / 'last_checkpoint').read_text() == first
    assert not describe_non_finite(torch.load(first)['state_dict'])
    if not clip_grad:
        return
    # --resume epoch_1.pth, the NaN again (iteration 3): the run names the
    # checkpoint it resumed from.
    cfg = _epoch_pretrain_cfg(imagenet, str(tmp_path / 'again'))
    cfg.merge_from_dict(dict(load_from=first, resume=True))
    with pytest.raises(RuntimeError, match='at iteration 3 .*The last '
                       f'checkpoint with finite weights is {first}'):
        _train(cfg, _NanGradient(iteration=3))


def test_exploded_weights_are_never_saved(imagenet, tmp_path):
    work = tmp_path / 'work'
    cfg = _epoch_pretrain_cfg(imagenet, str(work))
    with pytest.raises(RuntimeError) as error:
        _train(cfg, _LrSpike(iteration=4, lr=1e8))
    message = str(error.value)
    assert message.startswith(
        'Refusing to save the checkpoint after iteration 4: ')
    assert 'trained tensor(s) beyond max_abs_weight=10000: ' in message
    assert 'NaN/Inf' not in message.split('Training stopped')[0]
    first = str(work / 'epoch_1.pth')
    assert f'The last checkpoint with finite weights is {first}' in message
    assert sorted(osp.basename(p) for p in glob.glob(str(work / '*.pth*'))) \
        == ['epoch_1.pth']


@pytest.mark.parametrize('config, nan_at, expected', [
    (CLS_FINETUNE, 3, 'Refusing to save the checkpoint after iteration 3: '),
    (CLS_LINEAR, 1, r'Non-finite loss \(nan\) at iteration 2 '),
    (SEG_UPERNET, 1, r'Non-finite loss \(nan\) at iteration 2 '),
], ids=['fine-tune', 'linear', 'upernet'])
def test_downstream_runs_stop_instead_of_training_on(
        config, nan_at, expected, pretrained, imagenet, ade20k, tmp_path):
    """The downstream configs clip no gradients: a NaN step shows as a NaN
    loss next iteration, or in the weights before the save."""
    work = str(tmp_path / 'work')
    if config == SEG_UPERNET:
        cfg = tiny_segmentation_cfg(config, ade20k, work, pretrained)
    else:
        cfg = tiny_classification_cfg(config, imagenet, work, pretrained)
    assert cfg.optim_wrapper.get('clip_grad') is None
    with pytest.raises(RuntimeError, match=expected):
        _train(cfg, _NanGradient(iteration=nan_at))
    assert not glob.glob(osp.join(work, '*.pth'))


# ------------------------------------------------------------ the hook alone
class _Scaler:

    def __init__(self):
        self.scale = 1024.

    def get_scale(self):
        return self.scale


class _Wrapper:
    """An OptimWrapper with clip_grad (type norm) and a loss scaler."""

    def __init__(self, scaler):
        self.loss_scaler = scaler
        self.clip_grad_kwargs = dict(max_norm=3.0)
        self.grad_name = 'grad_norm'
        self.stepped = True

    def should_update(self):
        return self.stepped


class _Runner:
    """What the guard reads from mmengine's Runner."""

    def __init__(self, model, optim_wrapper):
        self.model, self.optim_wrapper = model, optim_wrapper
        self.iter, self.epoch = 0, 0
        self.hooks = []
        self.message_hub = MessageHub.get_instance(
            f'nonfinite_{uuid.uuid4().hex}')  # fresh: id() names recur
        self.logger = MMLogger.get_current_instance()


def test_amp_non_finite_gradient_norm_stays_a_counted_skip():
    """Under a loss scaler a NaN gradient norm is a skipped step, also with
    a static loss scale (no drop); a stale norm (no optimizer step, e.g.
    gradient accumulation) is not read."""
    wrapper = _Wrapper(_Scaler())
    runner = _Runner(torch.nn.Linear(2, 2), wrapper)
    hook = NonFiniteGuardHook()
    loss = dict(loss=torch.tensor(0.5))
    for step, (norm, stepped) in enumerate([(float('nan'), True),
                                            (1.0, True),
                                            (float('inf'), True),
                                            (float('inf'), False)]):
        runner.iter = step
        wrapper.stepped = stepped
        runner.message_hub.update_scalar('train/grad_norm', norm)
        hook.before_train_iter(runner, step)
        hook.after_train_iter(runner, step, outputs=loss)
    assert runner.message_hub.get_info('amp_skipped_steps') == 2

    # Without a loss scaler the same gradient norm stops the run.
    del wrapper.loss_scaler
    wrapper.stepped = True
    runner.message_hub.update_scalar('train/grad_norm', float('nan'))
    with pytest.raises(RuntimeError, match=r'Non-finite gradient norm \(nan'
                       r'\) at iteration 4 \(epoch 1\), with a finite loss'):
        hook.after_train_iter(runner, 3, outputs=loss)


def test_a_save_the_guard_did_not_foresee_is_checked_when_it_is_written():
    """e.g. save_best after validation: checked in before_save_checkpoint,
    and the message names the last checked file, not mmengine's last_ckpt
    (already the refused one)."""
    model = torch.nn.Linear(2, 2)
    runner = _Runner(model, _Wrapper(_Scaler()))
    hook = NonFiniteGuardHook(max_abs_weight=100.)
    runner.message_hub.update_info('last_ckpt', 's3://bucket/iter_2.pth')
    hook.before_save_checkpoint(runner, dict(meta=dict(iter=2)))
    with torch.no_grad():
        model.weight[0, 1] = 1e3
    runner.message_hub.update_info('last_ckpt', 's3://bucket/iter_3.pth')
    with pytest.raises(RuntimeError) as error:
        hook.before_save_checkpoint(runner, dict(meta=dict(iter=3)))
    message = str(error.value)
    assert 'after iteration 3: 1 trained tensor(s) beyond max_abs_weight=' \
        '100: weight (max |w| 1e+03)' in message
    assert 'finite weights is s3://bucket/iter_2.pth' in message


def test_ranks_agree_with_one_all_reduce_per_iteration(monkeypatch):
    """Another rank's non-finite loss, or broken weights before a save, stop
    this rank in the same iteration: the weights are checked on every rank
    right before CheckpointHook saves (not only on the saving rank), and
    each iteration makes one all-reduce."""
    other_rank = torch.zeros(4)  # loss, weights non-finite, exploded, max
    reductions = []

    def all_reduce(flags, op):
        reductions.append(op)
        flags.copy_(torch.maximum(flags, other_rank))

    monkeypatch.setattr(non_finite_guard_hook, 'is_distributed', lambda: True)
    monkeypatch.setattr(non_finite_guard_hook, 'all_reduce', all_reduce)
    runner = _Runner(torch.nn.Linear(2, 2), object())  # fp32, no clip_grad
    runner.hooks = [CheckpointHook(interval=2, by_epoch=False)]
    runner.max_iters = 10
    hook = NonFiniteGuardHook()
    loss = dict(loss=torch.tensor(0.5))
    hook.after_train_iter(runner, 0, outputs=loss)
    other_rank[0] = 1.
    with pytest.raises(RuntimeError, match=r'Non-finite loss \(on another '
                       r'rank\) at iteration 1 '):
        hook.after_train_iter(runner, 0, outputs=loss)
    runner.iter = 1  # iteration 2: a checkpoint follows
    other_rank[:] = torch.tensor([0., 0., 1., 5e9])
    with pytest.raises(RuntimeError, match='Refusing to save the checkpoint '
                       'after iteration 2: broken weights on another rank'):
        hook.after_train_iter(runner, 1, outputs=loss)
    assert reductions == ['max'] * 3


def test_long_lists_are_cut_and_arguments_checked():
    state = {f'w{i}': torch.full((2, ), float('nan')) for i in range(12)}
    state['index'] = torch.arange(3)  # not floating: skipped
    found = describe_non_finite(state)
    assert len(found) == 12
    with pytest.raises(ValueError) as error:
        check_finite_state_dict(state, 'X', 'Fix.')
    assert str(error.value).startswith('X holds NaN/Inf in 12 tensor(s): w0')
    assert 'w9 (float32, [2]): 2 nan, 0 inf (+2 more).' in str(error.value)
    assert 'w10' not in str(error.value)
    with pytest.raises(ValueError, match='max_abs_weight must be > 0'):
        NonFiniteGuardHook(max_abs_weight=0)


@pytest.mark.parametrize('config', sorted(
    glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)),
    ids=lambda p: osp.relpath(p, osp.join(REPO, 'configs')))
def test_every_config_carries_the_guard(config):
    types = [h['type'] for h in Config.fromfile(config).get('custom_hooks',
                                                             [])]
    assert types.count('NonFiniteGuardHook') + types.count(
        'mmpretrain.NonFiniteGuardHook') == 1, types
