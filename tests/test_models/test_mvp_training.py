"""Real MVP training iterations with mmengine's Runner on generated data."""
import copy
import math

import pytest
import torch
from mmengine.runner import Runner
from tiny import tiny_pretrain_cfg

from mvp_mm.utils import make_imagenet_folder


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('imagenet')
    make_imagenet_folder(str(root), num_classes=2, images_per_class=4,
                         image_size=80)
    return str(root)


def test_loss_finite_and_decreasing_on_a_fixed_batch(data_root, tmp_path):
    runner = Runner.from_cfg(tiny_pretrain_cfg(data_root, str(tmp_path)))
    model = runner.model
    optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    batch = next(iter(runner.train_dataloader))
    teacher = model.target_generator.teacher
    teacher_before = copy.deepcopy(teacher.state_dict())
    losses = []
    for _ in range(6):
        log_vars = model.train_step(batch, optim_wrapper)
        losses.append(log_vars['loss'].item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 1e-3
    # the frozen teacher got no gradient and did not move
    assert all(p.grad is None for p in teacher.parameters())
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_before[key])
    assert teacher.training is False  # train_step put the model in train()
    # and the optimizer never saw a teacher parameter
    optimised = {id(p) for g in optim_wrapper.param_groups
                 for p in g['params']}
    assert not optimised & {id(p) for p in teacher.parameters()}
    # every student parameter gets a gradient (no find_unused_parameters)
    data = model.data_preprocessor(batch, True)
    model.loss(**data)['loss'].backward()
    student = [n for n, p in model.named_parameters() if p.grad is None]
    assert student == []
    assert all(p.grad is None for p in teacher.parameters())


def test_train_writes_checkpoint_without_teacher(data_root, tmp_path):
    cfg = tiny_pretrain_cfg(data_root, str(tmp_path), max_iters=3)
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = torch.load(tmp_path / 'iter_3.pth', map_location='cpu',
                      weights_only=False)
    keys = list(ckpt['state_dict'])
    assert any(k.startswith('backbone.layers.') for k in keys)
    assert 'head.fc.weight' in keys
    assert not [k for k in keys if 'target_generator' in k or 'teacher' in k]
    # The log has no notice about the FileClient mmengine builds and never
    # uses, at start or at the save (AtomicCheckpointHook drops them).
    with open(runner.logger.log_file) as f:
        log = f.read()
    assert 'Saving checkpoint at 3 iterations' in log
    assert '"FileClient" will be deprecated' not in log
    assert '"HardDiskBackend" is the alias' not in log
    # evaluation of the checkpoint: student-teacher cosine per token kind
    metrics = runner.test()
    assert set(metrics) == {'alignment/cls', 'alignment/masked',
                            'alignment/visible'}
    assert all(-1 <= v <= 1 for v in metrics.values())


def test_head_follows_teacher_and_grids_must_match(data_root, tmp_path):
    from mmpretrain.registry import MODELS
    cfg = tiny_pretrain_cfg(data_root, str(tmp_path))
    model = MODELS.build(cfg.model)
    assert model.head.fc.in_features == model.backbone.embed_dims
    assert model.head.fc.out_features == model.target_generator.out_dims
    bad = copy.deepcopy(cfg.model)
    bad.backbone.img_size = 96  # 6 x 6 student grid vs 4 x 4 teacher grid
    with pytest.raises(ValueError, match='patch grid'):
        MODELS.build(bad)
    bad = copy.deepcopy(cfg.model)
    bad.head.out_channels = 7
    with pytest.raises(ValueError, match='out_channels=7'):
        MODELS.build(bad)
