"""Fast paths compute what the plain paths compute; the benchmark runs."""
import copy
import json
import os.path as osp
import subprocess
import sys

import open_clip
import pytest
import torch
from mmcv.cnn.bricks.drop import drop_path
from open_clip.transformer import QuickGELU
from mmengine.config import Config
from tiny import IMG, tiny_pretrain_cfg

from mmpretrain.models.backbones.beit import BEiTTransformerEncoderLayer
from mmpretrain.models.losses import CosineSimilarityLoss
from mmpretrain.models.utils import BEiTAttention, build_clip_model
from mmpretrain.registry import MODELS
from mvp_mm.models.student import fused_beit_attention
from mvp_mm.models import (FusedBEiTAttention,
                           FusedBEiTTransformerEncoderLayer, biased_attention,
                           fold_quick_gelu)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GRID = IMG // 16
TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2,
                 feedforward_channels=64)
# mmpretrain's CLIP (build_clip_model) infers 64-wide heads from the state
# dict, so the tiny CLIP that both teachers share has 64-wide towers.
STOCK_TINY_CLIP = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=IMG, layers=2, width=64, patch_size=16,
                    head_width=64),
    text_cfg=dict(context_length=8, vocab_size=100, width=64, heads=1,
                  layers=1))


def _backbone(kind, **kwargs):
    cfg = dict(type=kind, arch=TINY_ARCH, img_size=IMG, drop_path_rate=0.2,
               layer_scale_init_value=0.1)
    return MODELS.build(dict(cfg, **kwargs))


def _mask(batch=2):
    mask = torch.zeros(batch, GRID, GRID, dtype=torch.bool)
    mask[0, :2] = True  # 1 = masked
    mask[1, :, 1:3] = True
    return mask


def _forward_backward(model, x, mask, seed=0):
    """Train mode (drop path on), a fixed seed, a loss on every token."""
    model.zero_grad()
    torch.manual_seed(seed)
    out = model(x, mask)[0]
    (out * torch.linspace(-1, 1, out.size(-1))).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return out.detach(), grads


def _assert_same(ref, new, atol=1e-5):
    (out_ref, grads_ref), (out_new, grads_new) = ref, new
    torch.testing.assert_close(out_new, out_ref, atol=atol, rtol=1e-5)
    assert grads_new.keys() == grads_ref.keys()
    for name in grads_ref:
        torch.testing.assert_close(
            grads_new[name], grads_ref[name], atol=atol, rtol=1e-4,
            msg=lambda m, name=name: f'{name}: {m}')


@pytest.mark.parametrize('bias', ['qv_bias', True, False])
@pytest.mark.parametrize('own_table', [True, False])
@pytest.mark.parametrize('kernel', ['cpu', 'sdpa'])
def test_fused_attention_equals_beit_attention(bias, own_table, kernel,
                                               monkeypatch):
    """``kernel='sdpa'``: the call CUDA makes, SDPA with a trainable
    additive mask, here on CPU (where PyTorch runs it on its math path)."""
    if kernel == 'sdpa':
        monkeypatch.setattr(fused_beit_attention, '_needs_biased_attention',
                            lambda *args: False)
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, window_size=(3, 3),
                  use_rel_pos_bias=own_table, bias=bias)
    # float64: the two are the same maths, so they agree to rounding.
    plain = BEiTAttention(**kwargs).double()
    fused = FusedBEiTAttention(**kwargs).double()
    for p in plain.parameters():  # non-zero biases and tables
        p.data.normal_(0, 0.3)
    fused.load_state_dict(plain.state_dict())  # same keys, strictly
    x = torch.randn(2, 10, 32, dtype=torch.double, requires_grad=True)
    shared = torch.randn(4, 10, 10, dtype=torch.double,
                         requires_grad=True)  # [heads, N, N]
    results = []
    for module in (plain, fused):
        out = module(x, rel_pos_bias=shared)
        out.square().sum().backward()
        grads = [x.grad, shared.grad] + [p.grad for p in module.parameters()]
        results.append((out.detach(), [g.clone() for g in grads]))
        x.grad = shared.grad = None
    torch.testing.assert_close(results[1][0], results[0][0])
    for g_fused, g_plain in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(g_fused, g_plain)


@pytest.mark.parametrize('bias_grad', [True, False])
def test_biased_attention_equals_reference_attention(bias_grad):
    """The CPU kernel for a trainable bias: outputs and all four gradients
    equal the textbook maths (float64), q/k/v being strided views."""
    torch.manual_seed(0)
    B, H, N, D = 2, 3, 7, 4
    qkv = torch.randn(B, N, 3, H, D, dtype=torch.double, requires_grad=True)
    bias = torch.randn(H, N, N, dtype=torch.double, requires_grad=bias_grad)
    grad_out = torch.randn(B, H, N, D, dtype=torch.double)
    results = []
    for fused in (False, True):
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # [B, H, N, D]
        if fused:
            out = biased_attention(q, k, v, bias, 0.3)
        else:
            out = ((q @ k.transpose(-2, -1)) * 0.3 + bias).softmax(-1) @ v
        out.backward(grad_out)
        results.append([out.detach(), qkv.grad.clone()] +
                       ([bias.grad.clone()] if bias_grad else []))
        qkv.grad = bias.grad = None
    for new, ref in zip(*results[::-1]):
        torch.testing.assert_close(new, ref)


def _official_beit_block(layer, x, rel_pos_bias):
    """Official BEiT's block on ``layer``'s modules: drop path once per
    branch (https://github.com/microsoft/unilm, beit/modeling_finetune.py)."""
    prob = layer.drop_path.drop_prob if layer.training else 0.
    attn = layer.attn(layer.ln1(x), rel_pos_bias=rel_pos_bias)
    x = x + drop_path(layer.gamma_1 * attn, prob, layer.training)
    ffn = layer.ffn.layers(layer.ln2(x))
    return x + drop_path(layer.gamma_2 * ffn, prob, layer.training)


@pytest.mark.parametrize('build', ['from_layer', 'constructor'])
def test_fused_layer_is_official_beit_block(build):
    torch.manual_seed(0)
    kwargs = dict(embed_dims=32, num_heads=4, feedforward_channels=64,
                  layer_scale_init_value=0.1, window_size=(3, 3),
                  use_rel_pos_bias=False, drop_path_rate=0.5)
    plain = BEiTTransformerEncoderLayer(**kwargs).double()
    for p in plain.parameters():
        p.data.normal_(0, 0.3)
    if build == 'from_layer':
        fused = FusedBEiTTransformerEncoderLayer.from_layer(plain)
    else:
        fused = FusedBEiTTransformerEncoderLayer(**kwargs).double()
        fused.load_state_dict(plain.state_dict())  # strictly: same keys
    assert isinstance(fused.attn, FusedBEiTAttention)
    x = torch.randn(8, 10, 32, dtype=torch.double)
    shared = torch.randn(4, 10, 10, dtype=torch.double, requires_grad=True)
    for mode in (fused.train, fused.eval):
        mode()
        for seed in range(3):  # 8 samples: some branches dropped, some not
            torch.manual_seed(seed)
            expected = _official_beit_block(fused, x, shared)
            torch.manual_seed(seed)
            torch.testing.assert_close(fused(x, shared), expected)
    fused.train()
    torch.manual_seed(1)
    out = fused(x, shared)
    dropped = (out - x).flatten(1).abs().amax(1) == 0
    assert 0 < dropped.sum() < 8  # drop path draws per sample


def test_fused_backbone_equals_beit_pretrain_vit_and_shares_checkpoints():
    torch.manual_seed(0)
    # Without stochastic depth the two compute the same (with it, ours
    # drops each branch once; mmpretrain's layer the FFN branch twice).
    # float64: in float32 the order of a reduction (e.g. the mask token's
    # gradient, summed over every masked token) depends on the CPU's SIMD
    # width, and AVX2 and AVX-512 machines differ by ~4e-5.
    plain = _backbone('BEiTPretrainViT', drop_path_rate=0.)
    plain.init_weights()
    plain.rel_pos_bias.relative_position_bias_table.data.normal_(0, 0.5)
    plain.double()
    fused = _backbone('FusedBEiTPretrainViT', drop_path_rate=0.).double()
    fused.load_state_dict(plain.state_dict())  # strict: the same keys
    plain.load_state_dict(fused.state_dict())
    assert all(isinstance(layer, FusedBEiTTransformerEncoderLayer)
               for layer in fused.layers)
    x, mask = torch.randn(2, 3, IMG, IMG, dtype=torch.double), _mask()
    plain.train()
    fused.train()
    _assert_same(_forward_backward(plain, x, mask),
                 _forward_backward(fused, x, mask))
    plain.eval()
    fused.eval()
    with torch.no_grad():  # the unmasked path (features for probes)
        torch.testing.assert_close(
            fused(x, None)[0], plain(x, None)[0], atol=1e-5, rtol=1e-5)


def test_activation_checkpointing_changes_nothing_but_memory():
    torch.manual_seed(0)
    model = _backbone('FusedBEiTPretrainViT')
    model.init_weights()
    model.train()
    x, mask = torch.randn(2, 3, IMG, IMG), _mask()
    reference = _forward_backward(model, x, mask, seed=3)
    model.with_cp = True
    _assert_same(reference, _forward_backward(model, x, mask, seed=3))


def test_backbone_traces_for_torch_compile():
    """One graph, same numbers (AOT autograd; Inductor's codegen is
    PyTorch's, and too slow to run on a 2-core test machine)."""
    torch.manual_seed(0)
    model = _backbone('FusedBEiTPretrainViT', drop_path_rate=0.)
    model.init_weights()
    model.train()
    x, mask = torch.randn(2, 3, IMG, IMG), _mask()
    reference = _forward_backward(model, x, mask)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    compiled.zero_grad()
    out = compiled(x, mask)[0]
    (out * torch.linspace(-1, 1, out.size(-1))).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    _assert_same(reference, (out.detach(), grads))


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    torch.manual_seed(2)
    model = open_clip.create_model(
        'ViT-B-16-quickgelu', pretrained=None, **STOCK_TINY_CLIP)
    path = tmp_path_factory.mktemp('clip') / 'clip.pt'
    torch.save(model.state_dict(), path)
    return model.eval(), str(path)


def test_teacher_fast_path_equals_open_clip_and_mmpretrain_clip(clip_file):
    """Our teacher in eval/no_grad takes nn.MultiheadAttention's fused fast
    path; it equals open_clip's encode_image and mmpretrain's own CLIP (the
    stock teacher the benchmark compares against) on the same weights."""
    model, path = clip_file
    teacher = MODELS.build(
        dict(type='CLIPTargetGenerator', model_name='ViT-B-16-quickgelu',
             pretrained=path, model_overrides=STOCK_TINY_CLIP))
    stock = build_clip_model(torch.load(path), False).eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, IMG, IMG)  # already in CLIP's normalisation
    teacher.set_input_normalization(teacher.teacher_mean, teacher.teacher_std)
    fast = teacher(x)  # [B, 1 + M, D]
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        slow = teacher(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    with torch.no_grad():
        cls = model.encode_image(x)
        stock_tokens = stock.encode_image(x)[0]
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[:, 0], cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, stock_tokens, atol=1e-5, rtol=1e-5)
    # Eq. 9 ('all') is mmpretrain's CosineSimilarityLoss on every token.
    pred = torch.randn_like(fast)
    mvp_loss = MODELS.build(dict(type='MVPLoss', patches='all'))
    torch.testing.assert_close(
        mvp_loss(pred, fast), CosineSimilarityLoss()(pred, stock_tokens))


def test_folded_quick_gelu_tower_equals_open_clip():
    torch.manual_seed(0)
    clip = open_clip.create_model(
        'ViT-B-16-quickgelu', pretrained=None, **STOCK_TINY_CLIP).visual
    clip = clip.double().eval()
    for p in clip.parameters():  # non-trivial biases
        p.data.add_(torch.randn_like(p) * 0.05)
    folded = copy.deepcopy(clip)
    assert fold_quick_gelu(folded) == 2  # one MLP per block
    assert fold_quick_gelu(folded) == 0  # nothing left to fold
    assert all(isinstance(block.mlp.gelu, torch.nn.SiLU)
               for block in folded.transformer.resblocks)
    x = torch.randn(2, 3, IMG, IMG, dtype=torch.double)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), clip(x))
    gelu_tower = open_clip.create_model(
        'ViT-B-16', pretrained=None, **STOCK_TINY_CLIP).visual
    assert fold_quick_gelu(gelu_tower) == 0  # nn.GELU: one op already
    normformer = torch.nn.Sequential(torch.nn.Linear(4, 8), QuickGELU(),
                                     torch.nn.LayerNorm(8),
                                     torch.nn.Linear(8, 4))
    assert fold_quick_gelu(normformer) == 0  # a norm in between: not linear


def test_pretrain_configs_use_the_fused_student():
    for name in ('mvp_vit-b16_300e_in1k.py', 'mvp_vit-l16_300e_in1k.py'):
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'pretrain', name))
        assert cfg.model.backbone.type == 'FusedBEiTPretrainViT'
        assert cfg.optim_wrapper.optimizer.fused is True


def test_train_keeps_fused_adamw_where_torch_has_it(monkeypatch):
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import train
    finally:
        sys.path.pop(0)

    def fallback(cuda: bool, version: str) -> Config:
        cfg = Config(dict(optim_wrapper=dict(
            type='AmpOptimWrapper', loss_scale='dynamic',
            optimizer=dict(type='AdamW', lr=1e-3, fused=True))))
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
        monkeypatch.setattr(torch, '__version__', version)
        train.amp_fallback_on_cpu(cfg)
        return cfg.optim_wrapper

    old_cpu = fallback(cuda=False, version='2.3.1')
    assert old_cpu.type == 'OptimWrapper'
    assert 'fused' not in old_cpu.optimizer  # no CPU kernel before 2.4
    assert fallback(cuda=False, version='2.4.0').optimizer.fused is True
    gpu = fallback(cuda=True, version='2.3.1')
    assert gpu.type == 'AmpOptimWrapper' and gpu.optimizer.fused is True


def test_fused_adamw_takes_the_same_steps_as_adamw():
    torch.manual_seed(0)
    params = [torch.randn(7, 5), torch.randn(5)]
    fused = [p.clone().requires_grad_() for p in params]
    plain = [p.clone().requires_grad_() for p in params]
    kwargs = dict(lr=1e-2, betas=(0.9, 0.999), weight_decay=0.05)
    opt_fused = torch.optim.AdamW(fused, fused=True, **kwargs)
    opt_plain = torch.optim.AdamW(plain, **kwargs)
    for _ in range(3):
        for a, b in zip(fused, plain):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        opt_fused.step()
        opt_plain.step()
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b)
    assert not torch.equal(fused[0], params[0])


def test_benchmark_runs_on_a_tiny_config(tmp_path):
    """Smoke test: the harness builds both steps, checks equal loss at init,
    times them and writes its JSON (no timing assertions)."""
    cfg = tiny_pretrain_cfg(str(tmp_path / 'unused'), str(tmp_path / 'w'))
    cfg.merge_from_dict(dict(model=dict(target_generator=dict(
        model_overrides=dict(_delete_=True, **STOCK_TINY_CLIP)))))
    cfg.dump(str(tmp_path / 'tiny.py'))
    out = tmp_path / 'bench.json'
    subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'benchmark.py'),
         str(tmp_path / 'tiny.py'), '--batch-size', '2', '--steps', '1',
         '--warmup', '0', '--masks', '20', '--with-cp', '--peak-tflops',
         '0.5', '--json', str(out)],
        check=True, cwd=REPO, timeout=300)
    result = json.loads(out.read_text())
    assert result['loss_at_init']['abs_diff'] <= 1e-4
    assert set(result['img_per_s']) == {'mvp', 'stock', 'student', 'mvp_cp'}
    assert {'mvp_vs_stock', 'teacher_overhead', 'cp_slowdown'} <= set(
        result['ratios'])
    assert result['masks']['ours_per_s'] > 0
    assert result['machine']['torch_threads'] == 2
    flops = result['model_flops']
    assert flops['achieved_tflops'] == pytest.approx(
        flops['tflop_per_step']['total'] / result['seconds']['mvp'])
    assert flops['mfu'] == pytest.approx(flops['achieved_tflops'] / 0.5)
    steal = result['cpu_steal']  # None only where /proc/stat is missing
    assert steal is None or 0 <= steal <= 1
