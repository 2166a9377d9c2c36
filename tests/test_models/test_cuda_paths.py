"""The CUDA code paths: mixed precision, the fused attention kernel with a
trainable bias, the bf16 teacher, fused AdamW, torch.compile and the
downstream step under AMP.

Each test is written for any device and runs twice: on CPU here, at tiny
size (CPU autocast, CPU GradScaler, the Dynamo capture), so that the test's
own code is exercised in every run, and on CUDA (``cuda`` marker, skipped
without a GPU; ``tools/gpu_check.sh`` runs ``pytest -m cuda``) at a size
where the CUDA kernels are the ones a real run takes.
"""
import copy
import functools
import json
import math
import os.path as osp
import sys
from glob import glob

import pytest
import torch
import torch.nn.functional as F
from devices import CUDA_MARKS, DEVICES
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from tiny import (GRID, IMG, NUM_MASKED, PRETRAIN_CFG, REPO, TINY_CLIP,
                  tiny_pretrain_cfg)
from tiny_downstream import (SEG_UPERNET, tiny_mvp_pretrain_cfg,
                             tiny_segmentation_cfg)

from mmpretrain.registry import MODELS
from mvp_mm.models.student import fused_beit_attention
from mvp_mm.utils import make_ade20k_folder, make_photo_imagenet_folder

# ------------------------------------------------------------ helpers
# Unit roundoff (half the distance from 1 to the next number).
ROUNDOFF = {torch.float16: 2.**-11, torch.bfloat16: 2.**-8}


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.double()
    return ((value.double() - reference).norm() /
            reference.norm().clamp_min(1e-30)).item()


@HOOKS.register_module()
class RecordStepHook(Hook):
    """Write each iteration's loss, loss scale and optim wrapper type to
    ``work_dir/steps.json`` (the CUDA and CPU AMP tests read it)."""

    def before_train(self, runner) -> None:
        self.rows = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        wrapper = runner.optim_wrapper
        scaler = getattr(wrapper, 'loss_scaler', None)
        self.rows.append(dict(
            loss=outputs['loss'].item(),
            loss_scale=None if scaler is None else scaler.get_scale(),
            wrapper=type(wrapper).__name__))
        with open(osp.join(runner.work_dir, 'steps.json'), 'w') as f:
            json.dump(self.rows, f)


def _train_tool(cfg: Config, tmp_path, device: str, monkeypatch, *args):
    """``python tools/train.py CONFIG --work-dir DIR [args]``, in this
    process; returns RecordStepHook's rows.

    On CPU, the configs' ``AmpOptimWrapper`` (which asserts a GPU and which
    tools/train.py replaces by fp32 there) is let run: bf16 autocast, torch's
    CPU GradScaler. On CUDA nothing is patched. Where a GPU is present the
    runner trains on it whatever the test asks: the CPU case is skipped
    there (the cuda case runs).
    """
    if device == 'cpu' and torch.cuda.is_available():
        pytest.skip('a GPU is present: tools/train.py trains on it, and '
                    'the cuda case of this test runs')
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='RecordStepHook')]
    path = str(tmp_path / 'config.py')
    cfg.dump(path)
    work_dir = str(tmp_path / 'work')
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import train
    finally:
        sys.path.pop(0)
    if device == 'cpu':
        from mmengine.optim.optimizer import amp_optimizer_wrapper as amp
        monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
        monkeypatch.setattr(amp, 'GradScaler',
                            functools.partial(torch.amp.GradScaler, 'cpu'))
        monkeypatch.setattr(train, 'amp_fallback_on_cpu', lambda cfg: None)
    monkeypatch.setattr(sys, 'argv',
                        ['train.py', path, '--work-dir', work_dir, *args])
    train.main()
    with open(osp.join(work_dir, 'steps.json')) as f:
        return json.load(f)


def _amp(cfg: Config, device: str) -> None:
    """The pretrain configs' optim wrapper (AmpOptimWrapper, fp16 on CUDA;
    bf16 on CPU, the only CPU autocast mmengine allows), with a dynamic loss
    scale that changes every step: it doubles after each finite step
    (growth_interval=1) and halves on an overflow."""
    assert Config.fromfile(PRETRAIN_CFG).optim_wrapper.type == \
        'AmpOptimWrapper'
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = dict(init_scale=2.**16, growth_interval=1)
    if device == 'cpu':
        cfg.optim_wrapper.dtype = 'bfloat16'


# AMP training iterations: on CUDA several (fp16 overflows back the scale
# off, finite steps grow it); on CPU one (bf16 does not overflow: the
# scale grows after the step; CPU time is short in CI).
AMP_ITERS = dict(cpu=1, cuda=4)


def _assert_amp_steps(rows, device: str) -> None:
    """Finite losses under AmpOptimWrapper, and a loss scale that moved
    from 2^16 and grew at least once (= at least one step was taken)."""
    assert len(rows) == AMP_ITERS[device]
    assert {row['wrapper'] for row in rows} == {'AmpOptimWrapper'}
    assert all(math.isfinite(row['loss']) for row in rows), rows
    scales = [row['loss_scale'] for row in rows]
    assert max(scales) > 2.**16, scales


# ------------------------------------------------------------ student
# Sizes: tiny on CPU; on CUDA, ViT-B/16's width, heads and 197 tokens (the
# kernels a real run takes), 4 layers.
STUDENT_SIZE = dict(
    cpu=dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                       feedforward_channels=64), img_size=IMG, batch=2),
    cuda=dict(arch=dict(embed_dims=768, num_layers=4, num_heads=12,
                        feedforward_channels=3072), img_size=224, batch=8))


def _student_pair(device: str):
    """mmpretrain's BEiTPretrainViT and our fused one, the config's
    settings, the same random weights (a non-trivial shared bias table),
    stochastic depth off (ours drops a branch once, mmpretrain's twice)."""
    size = STUDENT_SIZE[device]
    backbone = Config.fromfile(PRETRAIN_CFG).model.backbone.to_dict()
    backbone.update(arch=size['arch'], img_size=size['img_size'],
                    drop_path_rate=0.0)
    torch.manual_seed(0)
    plain = MODELS.build(dict(backbone, type='BEiTPretrainViT'))
    plain.init_weights()
    plain.rel_pos_bias.relative_position_bias_table.data.normal_(0, 0.5)
    fused = MODELS.build(dict(backbone, type='FusedBEiTPretrainViT'))
    fused.load_state_dict(plain.state_dict())
    for model in (plain, fused):
        model.to(device)
        model.train()  # mmpretrain's ViT train() returns None
    return plain, fused


def _student_step(model, x, mask, dtype=None):
    """Output and every parameter's gradient of a loss on all tokens, in
    autocast ``dtype`` (None: the model's own dtype)."""
    model.zero_grad()
    with torch.autocast(x.device.type, dtype=dtype or torch.float32,
                        enabled=dtype is not None):
        out = model(x.to(next(model.parameters()).dtype), mask)[0]
    weight = torch.linspace(-1, 1, out.size(-1), device=x.device)
    (out.double() * weight).sum().backward()
    return out.detach(), {
        n: p.grad.detach().clone()
        for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('device,kernel', [
    ('cpu', 'biased_attention'), ('cpu', 'sdpa'),
    pytest.param('cuda', 'sdpa', marks=CUDA_MARKS)])
def test_fused_student_under_autocast_matches_mmpretrain(
        device, kernel, dtype, monkeypatch):
    """Forward and all gradients of the fused student vs mmpretrain's
    ``BEiTPretrainViT``, both in the same autocast, against float64.

    Tolerance: ours may be at most twice as far from float64 as mmpretrain's
    own forward/backward in the same precision, plus 16 unit roundoffs
    (fp16: 0.8%, bf16: 6.25%, relative norm): fused kernels round in other
    places (e.g. the bias is cast to the autocast dtype before the kernel,
    mmpretrain adds it in float32), and each rounding is ~1 unit roundoff
    relative, accumulated over the layers and the sums of a gradient.
    ``kernel='sdpa'`` on CPU: the call CUDA makes (SDPA with a trainable
    additive mask), here on PyTorch's math path.
    """
    if kernel == 'sdpa' and device == 'cpu':
        monkeypatch.setattr(fused_beit_attention, '_needs_biased_attention',
                            lambda *args: False)
    plain, fused = _student_pair(device)
    size = STUDENT_SIZE[device]
    torch.manual_seed(1)
    x = torch.randn(size['batch'], 3, size['img_size'], size['img_size'],
                    device=device)
    grid = size['img_size'] // 16
    mask = torch.rand(size['batch'], grid, grid, device=device) < 0.4
    reference = _student_step(copy.deepcopy(plain).double(), x, mask)
    theirs = _student_step(plain, x, mask, dtype)
    ours = _student_step(fused, x, mask, dtype)
    assert ours[1].keys() == theirs[1].keys() == reference[1].keys()
    floor = 16 * ROUNDOFF[dtype]
    names = ['output'] + list(reference[1])
    for name, ref, a, b in zip(names, [reference[0], *reference[1].values()],
                               [ours[0], *ours[1].values()],
                               [theirs[0], *theirs[1].values()]):
        ours_error = _relative_error(a, ref)
        theirs_error = _relative_error(b, ref)
        assert ours_error <= 2 * theirs_error + floor, (
            f'{name}: ours {ours_error:.2e}, mmpretrain {theirs_error:.2e}')


# ------------------------------------------------------------ teacher
def _teacher(device: str):
    """CLIP ViT-B/16 (random weights) on CUDA; a tiny CLIP on CPU."""
    overrides = TINY_CLIP if device == 'cpu' else None
    teacher = MODELS.build(
        dict(type='CLIPTargetGenerator', model_name='ViT-B-16-quickgelu',
             pretrained=None, model_overrides=overrides))
    return teacher.to(device), (IMG if device == 'cpu' else 224)


@pytest.mark.parametrize('device', DEVICES)
def test_bf16_teacher_matches_fp32_teacher(device):
    """The teacher in bfloat16 (on CUDA its own autocast, ``bf16_on_gpu``;
    on CPU the same forward in CPU bf16 autocast) against float32: every
    token's cosine >= 0.999. bf16 rounds each op to ~0.4% relative (unit
    roundoff 2^-8); over 12 blocks a token's relative error stays around
    1% (1 - cosine ~ error^2 / 2: measured 6.5e-5 for a random ViT-B/16 in
    CPU bf16); 0.999 allows 4.5%. On CUDA, inside the AMP step's fp16
    autocast it still runs in bf16 (its own autocast wins)."""
    teacher, size = _teacher(device)
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size, device=device)
    teacher.bf16_on_gpu = False
    full = teacher(x)  # [B, 1 + M, D]
    teacher.bf16_on_gpu = True
    if device == 'cpu':
        with torch.autocast('cpu', dtype=torch.bfloat16):
            half = teacher(x)
    else:
        half = teacher(x)
        with torch.autocast('cuda', dtype=torch.float16):
            in_amp_step = teacher(x)
        torch.testing.assert_close(in_amp_step, half, rtol=0, atol=1e-4)
    assert half.dtype == full.dtype == torch.float32
    assert not torch.equal(half, full)  # bf16 did run
    cosine = F.cosine_similarity(half, full, dim=-1)  # [B, 1 + M]
    assert cosine.min().item() >= 0.999, cosine.min().item()


# ------------------------------------------------------------ optimizer
@pytest.mark.parametrize('unscale_first', [True, False])
@pytest.mark.parametrize('device', DEVICES)
def test_fused_adamw_under_grad_scaler_matches_adamw(device, unscale_first):
    """Fused AdamW under a dynamic GradScaler takes the steps of the default
    AdamW: the scaler hands it the scale and the overflow flag (the fused
    kernel unscales and skips by itself), or unscales first, as
    AmpOptimWrapper does before gradient clipping. An overflowing step is
    skipped by both and halves the scale."""
    torch.manual_seed(0)
    params = [torch.randn(64, 48, device=device), torch.randn(48,
                                                              device=device)]
    runs = []
    for fused in (True, False):
        weights = [p.clone().requires_grad_() for p in params]
        optimizer = torch.optim.AdamW(weights, lr=1e-2, weight_decay=0.05,
                                      fused=fused)
        scaler = torch.amp.GradScaler(device, init_scale=2.**10,
                                      growth_interval=1)
        torch.manual_seed(1)
        scales, snapshots = [], []
        for step in range(4):
            optimizer.zero_grad()
            targets = [torch.randn_like(w) for w in weights]
            loss = sum(((w - t)**2).sum() for w, t in zip(weights, targets))
            scaler.scale(loss).backward()
            if step == 2:  # an overflow, as in an fp16 backward
                weights[0].grad[0, 0] = float('inf')
            if unscale_first:
                scaler.unscale_(optimizer)
            scaler.step(optimizer)
            scaler.update()
            scales.append(scaler.get_scale())
            snapshots.append([w.detach().clone() for w in weights])
        runs.append((scales, snapshots))
    (scales, ours), (scales_plain, theirs) = runs
    assert scales == scales_plain == [2.**11, 2.**12, 2.**11, 2.**12]
    for a, b in zip(ours[1], ours[2]):  # the overflowing step was skipped
        assert torch.equal(a, b)
    for step_a, step_b in zip(ours, theirs):
        for a, b in zip(step_a, step_b):
            torch.testing.assert_close(a, b)
    assert not torch.equal(ours[-1][0], params[0])


# ------------------------------------------------------------ training
def _tiny_config_pipeline() -> list:
    """The pretrain config's own train pipeline (the fast crop included),
    at the tiny size."""
    pipeline = copy.deepcopy(
        Config.fromfile(PRETRAIN_CFG).train_dataloader.dataset.pipeline)
    for step in pipeline:
        if step['type'] == 'RandomResizedCropFromFile':
            step['scale'] = IMG
        if step['type'] == 'BlockwiseMaskGenerator':
            step.update(input_size=GRID, num_masking_patches=NUM_MASKED,
                        min_num_patches=2)
    return pipeline


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('photos'))
    make_photo_imagenet_folder(root, num_classes=2, images_per_class=4,
                               image_size=(200, 150))
    return root


@pytest.mark.parametrize('device', DEVICES)
def test_train_tool_step_under_amp_optim_wrapper(device, photos, tmp_path,
                                                 monkeypatch):
    """tools/train.py, a tiny pretrain config with the configs' pipeline
    (fast crop, in a DataLoader worker) and AmpOptimWrapper: finite losses,
    a loss scale that moves."""
    cfg = tiny_pretrain_cfg(photos, str(tmp_path / 'unused'),
                            max_iters=AMP_ITERS[device])
    cfg.train_dataloader.dataset.pipeline = _tiny_config_pipeline()
    cfg.train_dataloader.num_workers = 1
    _amp(cfg, device)
    rows = _train_tool(cfg, tmp_path, device, monkeypatch)
    _assert_amp_steps(rows, device)


@pytest.mark.parametrize('device', DEVICES)
def test_train_tool_step_with_compile(device, photos, tmp_path, monkeypatch):
    """``compile=True`` (mmengine compiles the model's train_step): the same
    first loss as the eager run. On CUDA with Inductor under the configs'
    fp16 AMP (fused kernels round differently: 1e-2 on a mean cosine in
    [-1, 1]); on CPU with Dynamo's graph capture only (backend 'eager':
    Inductor's C++ build is too slow for a 2-core CI), in fp32: the same
    ops, 1e-6."""
    losses = []
    for compile_cfg in (None, True if device == 'cuda' else
                        dict(backend='eager')):
        # CPU: one iteration (the capture is what is tested, and slow)
        cfg = tiny_pretrain_cfg(photos, str(tmp_path / 'unused'),
                                max_iters=2 if device == 'cuda' else 1)
        cfg.model.backbone.drop_path_rate = 0.0
        if device == 'cuda':
            _amp(cfg, device)
        if compile_cfg is not None:
            cfg.compile = compile_cfg
        run_dir = tmp_path / ('compiled' if compile_cfg else 'eager')
        run_dir.mkdir()
        torch._dynamo.reset()
        rows = _train_tool(cfg, run_dir, device, monkeypatch)
        assert all(math.isfinite(row['loss']) for row in rows)
        losses.append(rows[0]['loss'])
    log = glob(str(tmp_path / 'compiled' / 'work' / '*' / '*.log'))
    assert 'Model has been "compiled"' in open(log[0]).read()
    tolerance = 1e-2 if device == 'cuda' else 1e-6
    assert losses[1] == pytest.approx(losses[0], abs=tolerance)


@pytest.mark.parametrize('device', DEVICES)
def test_upernet_step_under_amp(device, tmp_path, monkeypatch):
    """The downstream UperNet config's step under its AmpOptimWrapper,
    through tools/train.py --pretrained: finite losses, a loss scale that
    moves."""
    ade = str(tmp_path / 'ADEChallengeData2016')
    make_ade20k_folder(ade, num_train=2, num_val=1)
    mvp = MODELS.build(
        tiny_mvp_pretrain_cfg(str(tmp_path), str(tmp_path)).model)
    checkpoint = str(tmp_path / 'mvp.pth')
    torch.save(dict(state_dict=mvp.state_dict()), checkpoint)
    cfg = tiny_segmentation_cfg(SEG_UPERNET, ade, str(tmp_path / 'unused'),
                                pretrained='', max_iters=AMP_ITERS[device])
    assert Config.fromfile(SEG_UPERNET).optim_wrapper.type == \
        'AmpOptimWrapper'
    _amp(cfg, device)
    rows = _train_tool(cfg, tmp_path, device, monkeypatch, '--pretrained',
                       checkpoint, '--no-validate')
    _assert_amp_steps(rows, device)
