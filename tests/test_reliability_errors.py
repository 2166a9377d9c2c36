"""Bad input gets a clear error that names the problem and the fix; nothing
is lost or silently replaced. One test per kind of bad input."""
import copy
import os
import os.path as osp
import re
import runpy
import sys
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from reliability_tiny import REPO, TRAIN, reliable_tiny_cfg
from tiny import tiny_pretrain_cfg

from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample
from mvp_mm.datasets import check_dataset_folders
from mvp_mm.engine import (NonFiniteGuardHook, StrictCheckpointLoadHook,
                           check_checkpoint_file, resolve_resume)
from mvp_mm.utils import make_imagenet_folder


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('in'))
    make_imagenet_folder(root, 2, 4, 80)
    return root


def _image(root: str, index: int = 0) -> str:
    folder = osp.join(root, 'train', 'n00000000')
    return osp.join(folder, sorted(os.listdir(folder))[index])


# ------------------------------------------------------------ images
def test_corrupt_and_truncated_images_name_the_file(tmp_path):
    load = TRANSFORMS.build(dict(type='CheckedLoadImageFromFile'))
    make_imagenet_folder(str(tmp_path), 1, 3, 80)
    good, garbage, cut = (_image(str(tmp_path), i) for i in range(3))
    with open(garbage, 'wb') as f:
        f.write(b'not an image at all' * 20)
    with open(cut, 'rb') as f:
        data = f.read()
    with open(cut, 'wb') as f:
        f.write(data[:len(data) // 2])

    assert load(dict(img_path=good))['img'].shape == (80, 80, 3)
    for path in (garbage, cut):
        with pytest.raises(ValueError, match='on_error=.skip.') as error:
            load(dict(img_path=path))
        assert path in str(error.value)
    skip = TRANSFORMS.build(
        dict(type='CheckedLoadImageFromFile', on_error='skip'))
    assert skip(dict(img_path=garbage)) is None
    assert skip(dict(img_path=cut)) is None
    assert skip.num_skipped == 2


def test_corrupt_image_in_a_data_worker_fails_with_file_name(tmp_path):
    root = str(tmp_path / 'in')
    make_imagenet_folder(root, 2, 4, 80)
    bad = _image(root, 1)
    with open(bad, 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 truncated jpeg')
    cfg = reliable_tiny_cfg(root, str(tmp_path / 'work'), num_workers=1)
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    with pytest.raises(ValueError, match=bad):
        for _ in loader:
            pass

    # skip-and-count: every batch still full, the skip is in the log
    cfg = reliable_tiny_cfg(root, str(tmp_path / 'work'), num_workers=0,
                            on_error='skip')
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    assert [len(batch['inputs']) for batch in loader] == [4, 4]
    assert loader.dataset.pipeline.transforms[1].num_skipped == 1


# ------------------------------------------------------------ data root
def test_missing_or_empty_data_root(tmp_path, data_root):
    train = copy.deepcopy(tiny_pretrain_cfg(data_root,
                                            str(tmp_path)).train_dataloader)
    check_dataset_folders(train.dataset)  # the good one passes
    train.dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError,
                       match='does not exist.*data_root=/path/to'):
        check_dataset_folders(train.dataset)
    os.makedirs(tmp_path / 'empty' / 'train' / 'n0')
    train.dataset.data_root = str(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError,
                       match='No images.*the folder is empty'):
        check_dataset_folders(train.dataset)
    # the real config's ImageNet(split='train') layout: 1000 class folders
    imagenet = Config.fromfile(
        osp.join(REPO, 'configs', 'pretrain',
                 'mvp_vit-b16_300e_in1k.py')).train_dataloader.dataset
    imagenet.data_root = data_root
    with pytest.raises(ValueError, match='holds 2 class folders'):
        check_dataset_folders(imagenet)
    imagenet.data_prefix.img_path = 'val/'
    with pytest.raises(FileNotFoundError,
                       match="Image folder.*data_prefix.*val/' does not "
                       'exist'):
        check_dataset_folders(imagenet)


# ------------------------------------------------------------ checkpoints
def test_missing_truncated_or_unnamed_checkpoint(tmp_path):
    # --resume (no path) in a work dir with no checkpoint: start from scratch
    cfg = Config(dict(resume=True, load_from=None, work_dir=str(tmp_path)))
    resolve_resume(cfg)
    assert cfg.resume is False and cfg.load_from is None

    good = str(tmp_path / 'iter_2.pth')
    torch.save({'state_dict': {}}, good)
    assert check_checkpoint_file(good) == good
    with pytest.raises(FileNotFoundError, match='iter_2.pth'):
        check_checkpoint_file(str(tmp_path / 'iter_9.pth'))
    cut = str(tmp_path / 'iter_4.pth')
    with open(good, 'rb') as f, open(cut, 'wb') as g:
        g.write(f.read()[:100])
    with pytest.raises(ValueError, match='truncated'):
        check_checkpoint_file(cut)

    # --resume (no path): last_checkpoint is followed and checked
    with open(tmp_path / 'last_checkpoint', 'w') as f:
        f.write(cut)
    cfg = Config(dict(resume=True, load_from=None, work_dir=str(tmp_path)))
    with pytest.raises(ValueError, match='truncated'):
        resolve_resume(cfg)
    with open(tmp_path / 'last_checkpoint', 'w') as f:
        f.write(good)
    resolve_resume(cfg)
    assert cfg.resume is True and cfg.load_from == good


def test_train_cli_checks_resume_file_and_data_root(tmp_path, data_root,
                                                    monkeypatch, capsys):
    """tools/train.py runs both checks before building anything; a missing
    --resume file is an argument error, before the config is even read."""
    train_main = runpy.run_path(TRAIN)['main']
    cfg = tiny_pretrain_cfg(data_root, str(tmp_path / 'work'))
    cfg.dump(str(tmp_path / 'cfg.py'))
    os.makedirs(tmp_path / 'work')
    (tmp_path / 'work' / 'iter_4.pth').write_bytes(b'')
    missing = str(tmp_path / 'work' / 'iter_7.pth')
    monkeypatch.setattr(
        sys, 'argv', ['train.py', str(tmp_path / 'cfg.py'), '--resume',
                      missing])
    with pytest.raises(SystemExit) as exit_:
        train_main()
    assert exit_.value.code == 2
    assert re.search(r'iter_7\.pth.*does not exist.*holds iter_4\.pth',
                     capsys.readouterr().err)
    monkeypatch.setattr(sys, 'argv', [
        'train.py', str(tmp_path / 'cfg.py'), '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/nowhere'
    ])
    with pytest.raises(FileNotFoundError, match='nowhere.*does not exist'):
        train_main()


class _Runner:
    """What the hooks read from mmengine's Runner."""

    def __init__(self, model=None, iteration=0, loss_scaler=None):
        self.model = model
        self.iter, self.epoch = iteration, 0
        self.message_hub = MessageHub.get_instance(
            f'reliability_{uuid.uuid4().hex}')  # fresh: id() names recur
        self.logger = MMLogger.get_current_instance()
        self.hooks = []  # no CheckpointHook: no save is due
        self.optim_wrapper = type('Wrapper', (), {})()
        if loss_scaler is not None:
            self.optim_wrapper.loss_scaler = loss_scaler


def test_wrong_checkpoint_for_the_model_is_refused():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    hook = StrictCheckpointLoadHook()
    runner = _Runner(model)
    hook.after_load_checkpoint(runner, {'state_dict': model.state_dict()})
    other = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 3),
                                torch.nn.Linear(3, 3))
    with pytest.raises(ValueError) as error:
        hook.after_load_checkpoint(runner, {'state_dict': other.state_dict()})
    message = str(error.value)
    assert 'unexpected (2): 2.bias, 2.weight' in message
    assert '0.weight: checkpoint (6, 4) vs model (8, 4)' in message
    assert 'random init' in message and '--resume' in message


# ------------------------------------------------------------ model set-up
@pytest.fixture
def tiny_model_cfg(tmp_path, data_root):
    init_default_scope('mmpretrain')
    return tiny_pretrain_cfg(data_root, str(tmp_path)).model


def test_unknown_teacher_name_or_tag(tiny_model_cfg):
    teacher = copy.deepcopy(tiny_model_cfg.target_generator)
    teacher.model_name = 'ViT-B-17-imaginary'
    with pytest.raises(ValueError, match='Unknown open_clip model_name.*'
                       'open_clip.list_models'):
        MODELS.build(teacher)
    teacher = copy.deepcopy(tiny_model_cfg.target_generator)
    teacher.pretrained = 'imaginary_tag'
    with pytest.raises(ValueError, match='Unknown pretrained tag.*Known tags'):
        MODELS.build(teacher)


def test_mask_count_larger_than_patch_grid():
    with pytest.raises(ValueError, match='must be in 1..16.*Lower it'):
        TRANSFORMS.build(dict(type='BlockwiseMaskGenerator', input_size=4,
                              num_masking_patches=17))


def test_input_size_not_divisible_by_patch(tiny_model_cfg):
    model = copy.deepcopy(tiny_model_cfg)
    model.backbone.img_size = 72
    model.target_generator.model_overrides.vision_cfg.image_size = 72
    with pytest.raises(ValueError, match='72 px is not divisible by the '
                       'patch size 16.*multiple of 16'):
        MODELS.build(model)
    # crops that do not fit the model: caught before the backbone
    built = MODELS.build(tiny_model_cfg)
    samples = [DataSample().set_mask(torch.zeros(5, 5, dtype=torch.bool))]
    with pytest.raises(ValueError, match=r'built for \(64, 64\) px.*got '
                       r'\(80, 80\) px.*RandomResizedCrop'):
        built.loss(torch.zeros(1, 3, 80, 80), samples)


def test_teacher_input_size_differs_from_student(tiny_model_cfg):
    model = copy.deepcopy(tiny_model_cfg)
    model.target_generator.model_overrides.vision_cfg.image_size = 96
    with pytest.raises(ValueError, match=r'\(4, 4\) patch grid but the '
                       r'teacher \(96 px.*\(6, 6\)'):
        MODELS.build(model)


# ------------------------------------------------------------ training
def test_non_finite_loss_stops_with_iteration_number(tmp_path):
    hook = NonFiniteGuardHook()
    runner = _Runner(torch.nn.Linear(2, 2), iteration=2)
    saved = str(tmp_path / 'iter_2.pth')  # saved after the weight check
    runner.message_hub.update_info('last_ckpt', saved)
    hook.before_save_checkpoint(runner, dict(meta=dict(iter=2)))
    open(saved, 'w').close()
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(0.5)))
    with pytest.raises(RuntimeError, match=r'Non-finite loss \(nan\) at '
                       f'iteration 3.*{saved}.*--resume'):
        hook.after_train_iter(runner, 0,
                              outputs=dict(loss=torch.tensor(float('nan'))))


class _Scaler:

    def __init__(self):
        self.scale = 1024.

    def get_scale(self):
        return self.scale


def test_amp_skips_are_counted_and_persistent_nan_stops():
    scaler = _Scaler()
    hook = NonFiniteGuardHook(amp_patience=3)
    runner = _Runner(loss_scaler=scaler)
    nan = dict(loss=torch.tensor(float('inf')))
    for step in range(2):  # the loss scaler skips these steps
        hook.before_train_iter(runner, step)
        scaler.scale /= 2
        hook.after_train_iter(runner, step, outputs=nan)
    assert runner.message_hub.get_info('amp_skipped_steps') == 2
    hook.before_train_iter(runner, 2)
    hook.after_train_iter(runner, 2, outputs=dict(loss=torch.tensor(1.)))
    assert runner.message_hub.get_info('amp_skipped_steps') == 2
    with pytest.raises(RuntimeError, match='3 iterations in a row'):
        for step in range(3, 6):
            hook.before_train_iter(runner, step)
            scaler.scale /= 2
            hook.after_train_iter(runner, step, outputs=nan)


def test_nan_in_training_stops_before_the_checkpoint(tmp_path, data_root,
                                                     monkeypatch):
    from mvp_mm.models import MVP
    cfg = tiny_pretrain_cfg(data_root, str(tmp_path / 'work'), max_iters=3)
    cfg.default_hooks.checkpoint.interval = 1
    real_loss = MVP.loss

    def nan_at_iteration_2(self, inputs, data_samples, **kwargs):
        losses = real_loss(self, inputs, data_samples, **kwargs)
        nan_at_iteration_2.calls += 1
        if nan_at_iteration_2.calls == 2:
            losses['loss'] = losses['loss'] * float('nan')
        return losses

    nan_at_iteration_2.calls = 0
    monkeypatch.setattr(MVP, 'loss', nan_at_iteration_2)
    with pytest.raises(RuntimeError, match='at iteration 2 '):
        Runner.from_cfg(cfg).train()
    work = tmp_path / 'work'
    assert (work / 'iter_1.pth').is_file()
    assert not (work / 'iter_2.pth').exists()
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_1.pth')
