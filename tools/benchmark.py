"""Measure MVP's training step, and compare it with stock mmpretrain parts.

For one pretrain config (e.g. ``configs/pretrain/mvp_vit-b16_300e_in1k.py``
or the ViT-L/16 one), on CPU or GPU, this measures in ONE run, interleaved
round by round (the order rotates every round), with medians over the
rounds after warm-up:

- ``mvp``: our training step, ``MVP.loss`` (the config's student, i.e.
  :class:`FusedBEiTPretrainViT`, the frozen :class:`CLIPTargetGenerator`,
  ``MVPHead`` + ``MVPLoss``) + backward + the config's optimizer step
  (fused AdamW, grad clip 3.0);
- ``stock``: the same step assembled from stock mmpretrain parts (see
  :class:`StockMVPStep`): ``BEiTPretrainViT``, mmpretrain's ``CLIPGenerator``
  (mmpretrain's own CLIP, ``build_clip_model``, loaded from the same
  open_clip weights file), one ``nn.Linear`` and ``CosineSimilarityLoss``,
  with mmpretrain's default (non-fused) AdamW;
- ``student``: our step without the teacher (the targets are computed once
  beforehand): the floor the teacher overhead is measured against;
- ``mvp_cp`` (``--with-cp``): our step with activation checkpointing;
- teacher forward alone, ours and stock, each in its step's optim-wrapper
  context (so under AMP the stock teacher runs in autocast, as in its step);
- masks per second: :class:`BlockwiseMaskGenerator` vs mmpretrain's
  ``BEiTMaskGenerator``;
- model FLOPs utilisation of our step: its model FLOPs
  (:func:`mvp_mm.utils.mvp_step_flops`) over the median step time, as a
  share of ``--peak-tflops`` or of the known peak of the GPU.

Before timing, ``mvp`` and ``stock`` are given the same weights and the same
batch, and their losses (stochastic depth off: ours drops each branch once,
mmpretrain's layer its FFN branch twice) must agree within 1e-4, or the
script stops. Ratios are medians of the per-round ratios (paired, so
slow load changes on a shared machine cancel; the load average and, in a
VM, the share of CPU time the hypervisor stole while timing are recorded,
as a step's time stretches with it). Peak memory per step is the CUDA
allocator's peak above the resting state or, on CPU, the process RSS peak
above the resting state (sampled every millisecond after ``malloc_trim``),
each measured in one extra, untimed step.

The CLIP weights: ``--clip-checkpoint`` (an open_clip/OpenAI-layout state
dict file) or, by default, a seeded random CLIP of the config's
architecture written to a temporary file; the speed does not depend on the
values, and both teachers load the same file.

With ``--data`` it times the config's training data pipeline instead,
per CPU core, against mmpretrain's stock BEiT pipeline (see
``tools/benchmarking/data_pipeline.py``).

Examples::

    python tools/benchmark.py configs/pretrain/mvp_vit-b16_300e_in1k.py \
        --device cpu --threads 2 --batch-size 8 --json work_dirs/bench.json
    python tools/benchmark.py configs/pretrain/mvp_vit-b16_300e_in1k.py \
        --data --workers 2 --json work_dirs/data.json

Paper: https://arxiv.org/abs/2203.05175
"""
import argparse
import ctypes
import json
import logging
import os
import os.path as osp
import platform
import random
import statistics
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import open_clip
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from torch import nn

import mvp_mm  # noqa: F401  (registers MVP's modules)
from mmpretrain.datasets.transforms import BEiTMaskGenerator
from mmpretrain.models.losses import CosineSimilarityLoss
from mmpretrain.models.selfsup.milan import CLIPGenerator
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mvp_mm.datasets.transforms import BlockwiseMaskGenerator
from mvp_mm.utils import mvp_step_flops

from benchmarking.data_pipeline import (benchmark_data_pipelines,
                                      print_data_table)

LOSS_TOLERANCE = 1e-4
# The targets, as ratios measured in one run on one machine.
TARGETS = dict(
    mvp_vs_stock=dict(cpu=1.1, cuda=1.3),  # at least
    teacher_overhead=1.35,  # at most, x the student-alone step
    masks=10.0,  # at least, x mmpretrain's BEiTMaskGenerator
    mfu=dict(cuda=0.45))  # at least, on one H100, bf16, batch 256
# Dense 16-bit tensor-core peaks, TFLOP/s, as torchtitan tabulates them
# (https://github.com/pytorch/torchtitan/blob/main/torchtitan/tools/utils.py,
# get_peak_flops); the first name fragment found in the device name wins.
GPU_PEAK_TFLOPS = (('H100 NVL', 835.0), ('H100 PCIe', 756.0), ('H100', 989.0),
                   ('H200', 989.0), ('B200', 2250.0), ('A100', 312.0))


def parse_args():
    parser = argparse.ArgumentParser(
        description='Benchmark the MVP training step against stock parts')
    parser.add_argument('config', help='a pretrain config file')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument(
        '--threads', type=int, default=2,
        help='torch CPU threads (torch.set_num_threads). Default: 2')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--steps', type=int, default=5, help='timed rounds. Default: 5')
    parser.add_argument(
        '--warmup', type=int, default=1, help='untimed rounds. Default: 1')
    parser.add_argument(
        '--masks', type=int, default=2000,
        help='masks per generator and round. Default: 2000')
    parser.add_argument(
        '--with-cp', action='store_true',
        help='also time our step with activation checkpointing')
    parser.add_argument(
        '--compile', action='store_true',
        help='torch.compile our student and teacher (not the stock parts)')
    parser.add_argument(
        '--no-malloc-trim', action='store_true',
        help='CPU: glibc keeps freed memory (mallopt), so steady-state steps '
        'do not page-fault fresh memory in, as with jemalloc/tcmalloc')
    parser.add_argument(
        '--clip-checkpoint',
        help='open_clip/OpenAI-layout CLIP state dict for both teachers. '
        'Default: a seeded random CLIP written to a temporary file')
    parser.add_argument(
        '--peak-tflops', type=float,
        help='the device peak for MFU, TFLOP/s. Default: the dense 16-bit '
        'tensor-core peak of known GPUs (A100, H100, H200, B200); none on CPU')
    parser.add_argument(
        '--data', action='store_true',
        help='time the training data pipeline per CPU core (ours vs '
        "mmpretrain's BEiT pipeline), not the training step")
    parser.add_argument(
        '--workers', type=int, default=len(available_cores()),
        help='--data: worker processes, one core and one thread each. '
        'Default: one per available core')
    parser.add_argument(
        '--data-images', type=int, default=64,
        help='--data: JPEG files per round. Default: 64')
    parser.add_argument(
        '--data-image-size', type=int, nargs=2, default=(500, 375),
        metavar=('W', 'H'),
        help='--data: the files\' width and height. Default: 500 375 '
        '(ImageNet\'s typical)')
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. model.backbone.arch=large')
    return parser.parse_args()


def available_cores() -> List[int]:
    """The CPU cores this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class StockMVPStep(nn.Module):
    """MVP's step assembled from stock mmpretrain parts, as a user would.

    - student: mmpretrain's ``BEiTPretrainViT`` (plain ``BEiTAttention``);
    - teacher: mmpretrain's ``CLIPGenerator`` (MILAN's target generator):
      mmpretrain's own CLIP (``build_clip_model``) loaded from the checkpoint
      file, a registered submodule (so it follows ``model.train()`` and its
      parameters reach the optimizer, where AdamW skips them: no grads);
      it returns ``ln_post(x) @ proj`` for every token, as Eq. 7 needs;
    - the student's ImageNet-normalised input is mapped to CLIP's
      normalisation with constants computed once (buffers);
    - head: one ``nn.Linear``; loss: ``CosineSimilarityLoss`` (minus the mean
      cosine over all tokens = Eq. 9 with ``patches='all'``).

    Args:
        backbone (dict): The student config (its ``type`` is replaced).
        clip_checkpoint (str): CLIP state dict file.
        out_channels (int): CLIP's embedding dim.
        mean, std (tuple): The student input's normalisation (0-255).
        clip_mean, clip_std (tuple): CLIP's (0-255).
    """

    def __init__(self, backbone: dict, clip_checkpoint: str,
                 out_channels: int, mean: tuple, std: tuple,
                 clip_mean: tuple, clip_std: tuple) -> None:
        super().__init__()
        backbone = dict(backbone, type='BEiTPretrainViT')
        backbone.pop('with_cp', None)
        self.backbone = MODELS.build(backbone)
        self.head = nn.Linear(self.backbone.embed_dims, out_channels)
        self.target_generator = CLIPGenerator(clip_checkpoint)
        self.loss_module = CosineSimilarityLoss()
        mean, std = torch.tensor(mean), torch.tensor(std)
        clip_mean, clip_std = torch.tensor(clip_mean), torch.tensor(clip_std)
        self.register_buffer('scale', (std / clip_std).view(1, 3, 1, 1))
        self.register_buffer('shift',
                             ((mean - clip_mean) / clip_std).view(1, 3, 1, 1))

    def teacher(self, imgs: torch.Tensor) -> torch.Tensor:
        """CLIP features of every token ``[B, 1 + M, D]``."""
        return self.target_generator(imgs * self.scale + self.shift)[0]

    def loss(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        latent = self.backbone(imgs, mask)[0]  # [B, 1 + M, C]
        return self.loss_module(self.head(latent), self.teacher(imgs))


def write_random_clip(model_name: str, overrides: dict, path: str) -> None:
    """A seeded random open_clip CLIP's state dict (OpenAI key layout)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(model_name, pretrained=None,
                                       **overrides)
    torch.save(model.state_dict(), path)


def build_models(cfg: Config, clip_checkpoint: str, device: str):
    """Our MVP (from the config) and the stock assembly, same weights."""
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model_cfg.target_generator.pretrained = clip_checkpoint
    mvp = MODELS.build(model_cfg)
    mvp.init_weights()
    teacher = mvp.target_generator
    preprocessor = mvp.data_preprocessor
    stock = StockMVPStep(
        cfg.model.backbone, clip_checkpoint, teacher.out_dims,
        tuple(preprocessor.mean.flatten().tolist()),
        tuple(preprocessor.std.flatten().tolist()), teacher.teacher_mean,
        teacher.teacher_std)
    # Same keys: our student's checkpoint loads into the stock one, strictly.
    stock.backbone.load_state_dict(mvp.backbone.state_dict())
    stock.head.load_state_dict(mvp.head.fc.state_dict())
    return mvp.to(device).train(), stock.to(device).train()


def build_optimizers(cfg: Config, mvp: nn.Module, stock: nn.Module,
                     device: str):
    """The config's optim wrapper for both; the stock one without
    ``fused`` (mmpretrain's default AdamW)."""
    wrapper = cfg.optim_wrapper.copy()
    if device == 'cpu':  # as tools/train.py does on a machine with no GPU
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)
    theirs = wrapper.copy()
    theirs.optimizer = dict(theirs.optimizer)
    theirs.optimizer.pop('fused', None)
    return build_optim_wrapper(mvp, wrapper), build_optim_wrapper(
        stock, theirs)


def make_batch(cfg: Config, batch_size: int, image_size: int, grid: int,
               device: str):
    """Normalised images and BEiT block masks, on the device, once."""
    generator = BlockwiseMaskGenerator(
        input_size=grid, **mask_settings(cfg))
    masks = torch.stack([
        torch.from_numpy(generator.transform({})['mask'])
        for _ in range(batch_size)
    ]).to(device)  # [B, h, w], 1 = masked
    imgs = torch.randn(batch_size, 3, image_size, image_size, device=device)
    samples = [DataSample().set_mask(m) for m in masks]
    return imgs, masks, samples


def mask_settings(cfg: Config) -> dict:
    """The config's mask generator settings (the class defaults if none)."""
    for transform in cfg.train_dataloader.dataset.get('pipeline', []):
        if transform.get('type') == 'BlockwiseMaskGenerator':
            return {
                k: v
                for k, v in transform.items()
                if k not in ('type', 'input_size', '_scope_')
            }
    return dict()


def keep_freed_memory() -> None:
    """Make glibc serve tensors up to 32 MiB from its heap and never hand
    freed memory back to the OS. By default it does, and a training step
    then page-faults hundreds of MiB back in (here: 0.1-2 s per ViT-B
    step, varying step to step); jemalloc/tcmalloc avoid it too, see
    https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html"""
    libc = ctypes.CDLL('libc.so.6')
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    libc.mallopt(m_mmap_threshold, 32 * 2**20)
    libc.mallopt(m_trim_threshold, 2**31 - 1)


def cpu_ticks():
    """``(steal, total)`` clock ticks of all CPUs so far (``/proc/stat``),
    or None where there is no such file. Steal is time the hypervisor gave
    this VM's CPUs to someone else: wall-clock steps stretch by about that
    share, whatever the code does."""
    try:
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]
    return fields[7], sum(fields[:8])


def steal_share(start, end):
    """Share of CPU time stolen between two :func:`cpu_ticks` readings."""
    if start is None or end is None or end[1] == start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory of one call above the resting state, in bytes."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._page = os.sysconf('SC_PAGE_SIZE')
        self._libc = ctypes.CDLL('libc.so.6') if device == 'cpu' else None

    def _rss(self) -> int:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * self._page

    def __call__(self, fn: Callable[[], None]) -> int:
        if self.device == 'cuda':
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - base
        self._libc.malloc_trim(0)  # hand freed heap back: RSS = live set
        base = peak = self._rss()
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                peak = max(peak, self._rss())
                time.sleep(0.001)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        fn()
        done.set()
        sampler.join()
        return max(peak, self._rss()) - base


def check_equal_loss(mvp, stock, imgs, masks, samples) -> Dict[str, float]:
    """Same weights and batch -> same loss.

    Stochastic depth is off for the check (eval mode): ours drops each
    residual branch once, as official BEiT does, while mmpretrain's layer
    drops its FFN branch twice, so their random draws differ.
    """
    bf16 = mvp.target_generator.bf16_on_gpu
    mvp.target_generator.bf16_on_gpu = False  # compare in float32
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    mvp.eval()
    stock.eval()
    try:
        with torch.no_grad():
            ours = mvp.loss(imgs, samples)['loss'].item()
            theirs = stock.loss(imgs, masks).item()
    finally:
        mvp.train()
        stock.train()
        mvp.target_generator.bf16_on_gpu = bf16
        torch.backends.cuda.matmul.allow_tf32 = tf32
    if abs(ours - theirs) > LOSS_TOLERANCE:
        raise RuntimeError(
            f'The MVP step and the stock-parts step disagree at init: loss '
            f'{ours:.6f} vs {theirs:.6f} (tolerance {LOSS_TOLERANCE}). They '
            'do not compute the same thing, so their speeds cannot be '
            'compared; check the config (student, teacher, loss).')
    return dict(mvp=ours, stock=theirs, abs_diff=abs(ours - theirs))


def train_step(model: nn.Module, wrapper, loss_fn: Callable) -> None:
    """One optimisation step the way mmengine's ``train_step`` does it."""
    with wrapper.optim_context(model):
        loss = loss_fn()
    wrapper.update_params(loss)


def time_interleaved(cases: Dict[str, Callable], rounds: int, warmup: int,
                     device: str) -> Dict[str, List[float]]:
    """Seconds per call of each case, round by round, order rotating."""
    names = list(cases)
    times = {name: [] for name in names}
    for r in range(warmup + rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            cases[name]()
            synchronize(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(times: Dict[str, List[float]], slow: str,
                 fast: str) -> float:
    """Median over rounds of ``time[slow] / time[fast]``."""
    return statistics.median(
        s / f for s, f in zip(times[slow], times[fast]))


def benchmark_masks(cfg: Config, grid: int, count: int, rounds: int):
    """Masks per second, ours vs mmpretrain's, interleaved."""
    settings = mask_settings(cfg)
    ours = BlockwiseMaskGenerator(input_size=grid, **settings)
    theirs = BEiTMaskGenerator(input_size=grid, **settings)
    random.seed(0)
    np.random.seed(0)

    def run(generator):
        def generate():
            for _ in range(count):
                generator.transform({})
        return generate

    times = time_interleaved(
        dict(ours=run(ours), mmpretrain=run(theirs)), rounds, 1, 'cpu')
    return dict(
        ours_per_s=count / statistics.median(times['ours']),
        mmpretrain_per_s=count / statistics.median(times['mmpretrain']),
        ratio=paired_ratio(times, 'mmpretrain', 'ours'))


def peak_tflops(device: str,
                given: Optional[float] = None) -> Optional[float]:
    """The peak MFU is taken against: ``given``, else the table's entry
    for this GPU, else None (CPU, unknown GPU)."""
    if given is not None or device != 'cuda':
        return given
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in GPU_PEAK_TFLOPS if key in name), None)


def utilisation(flops: Dict[str, int], seconds: float,
                peak: Optional[float]) -> dict:
    """Model FLOPs per step, the rate achieved and, given a peak, MFU."""
    achieved = flops['total'] / seconds / 1e12
    return dict(
        tflop_per_step={k: v / 1e12 for k, v in flops.items()},
        achieved_tflops=achieved,
        peak_tflops=peak,
        mfu=None if peak is None else achieved / peak)


def machine(device: str, threads: int) -> dict:
    info = dict(
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch_threads=threads,
        torch=torch.__version__,
        python=platform.python_version())
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                info['cpu'] = line.split(':', 1)[1].strip()
                break
    if device == 'cuda':
        info['gpu'] = torch.cuda.get_device_name()
    return info


def main():
    args = parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda, but torch sees no CUDA device.')
    torch.set_num_threads(args.threads)
    if args.no_malloc_trim and args.device == 'cpu':
        keep_freed_memory()
    MMLogger.get_instance('benchmark', log_level='WARNING')
    logging.getLogger('root').setLevel(logging.ERROR)  # open_clip's notices
    load_before = os.getloadavg()[0]
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.data:
        return benchmark_data(args, cfg, load_before)
    device = args.device

    with tempfile.TemporaryDirectory() as tmp:
        clip_checkpoint = args.clip_checkpoint
        if clip_checkpoint is None:
            clip_checkpoint = osp.join(tmp, 'clip.pt')
            generator_cfg = cfg.model.target_generator
            write_random_clip(
                generator_cfg.get('model_name', 'ViT-B-16-quickgelu'),
                generator_cfg.get('model_overrides') or {}, clip_checkpoint)
        mvp, stock = build_models(cfg, clip_checkpoint, device)
    teacher = mvp.target_generator
    grid = teacher.img_size // teacher.patch_size
    imgs, masks, samples = make_batch(cfg, args.batch_size, teacher.img_size,
                                      grid, device)
    loss_at_init = check_equal_loss(mvp, stock, imgs, masks, samples)
    ours_opt, stock_opt = build_optimizers(cfg, mvp, stock, device)
    if args.compile:
        mvp.backbone.compile()
        # CLIPTargetGenerator.encode calls the tower's parts, not forward.
        teacher.teacher.transformer.compile()
    with torch.no_grad():
        target = teacher(imgs)  # [B, 1 + M, D], for the student-alone step
    flat_mask = masks.flatten(1)  # [B, M]

    def student_loss():
        latent = mvp.backbone(imgs, masks)[0]
        return mvp.head.loss(latent, target, flat_mask)

    def mvp_step():
        train_step(mvp, ours_opt, lambda: mvp.loss(imgs, samples)['loss'])

    def checkpointed_step():
        mvp.backbone.with_cp = True
        try:
            mvp_step()
        finally:
            mvp.backbone.with_cp = False

    steps = dict(
        mvp=mvp_step,
        stock=lambda: train_step(stock, stock_opt,
                                 lambda: stock.loss(imgs, masks)),
        student=lambda: train_step(mvp, ours_opt, student_loss))
    if args.with_cp:
        if not hasattr(mvp.backbone, 'with_cp'):
            raise SystemExit('--with-cp needs a FusedBEiTPretrainViT student.')
        steps['mvp_cp'] = checkpointed_step

    def forward_only(fn, model, wrapper):
        """As in its step: the wrapper's context (autocast under AMP)."""
        def run():
            with torch.no_grad(), wrapper.optim_context(model):
                fn()
        return run

    cases = dict(steps)
    cases.update(
        teacher_mvp=forward_only(lambda: teacher(imgs), mvp, ours_opt),
        teacher_stock=forward_only(lambda: stock.teacher(imgs), stock,
                                   stock_opt))
    ticks_before = cpu_ticks()
    times = time_interleaved(cases, args.steps, args.warmup, device)
    cpu_steal = steal_share(ticks_before, cpu_ticks())
    peak = PeakMemory(device)
    memory = {name: peak(step) for name, step in steps.items()}
    masks_result = benchmark_masks(cfg, grid, args.masks, args.steps)

    results = dict(
        config=args.config,
        device=device,
        machine=machine(device, args.threads),
        batch_size=args.batch_size,
        rounds=args.steps,
        warmup=args.warmup,
        compile=args.compile,
        no_malloc_trim=args.no_malloc_trim,
        loss_at_init=loss_at_init,
        seconds={k: statistics.median(v) for k, v in times.items()},
        img_per_s={
            k: args.batch_size / statistics.median(times[k])
            for k in steps
        },
        peak_memory_mib={k: v / 2**20 for k, v in memory.items()},
        ratios=dict(
            mvp_vs_stock=paired_ratio(times, 'stock', 'mvp'),
            teacher_overhead=paired_ratio(times, 'mvp', 'student'),
            stock_teacher_overhead=paired_ratio(times, 'stock', 'student'),
            teacher_stock_vs_mvp=paired_ratio(times, 'teacher_stock',
                                              'teacher_mvp')),
        model_flops=utilisation(
            mvp_step_flops(mvp, args.batch_size),
            statistics.median(times['mvp']),
            peak_tflops(device, args.peak_tflops)),
        masks=masks_result,
        load_average=dict(start=load_before, end=os.getloadavg()[0]),
        cpu_steal=cpu_steal,
        raw_seconds=times)
    if args.with_cp:
        results['ratios']['cp_slowdown'] = paired_ratio(
            times, 'mvp_cp', 'mvp')
    ratios = results['ratios']
    results['targets_met'] = dict(
        mvp_vs_stock=ratios['mvp_vs_stock'] >=
        TARGETS['mvp_vs_stock'][device],
        teacher_overhead=ratios['teacher_overhead'] <=
        TARGETS['teacher_overhead'],
        masks=masks_result['ratio'] >= TARGETS['masks'])
    mfu = results['model_flops']['mfu']
    if device in TARGETS['mfu'] and mfu is not None:
        results['targets_met']['mfu'] = mfu >= TARGETS['mfu'][device]
    print_table(results, steps)
    write_json(results, args.json)


def benchmark_data(args, cfg: Config, load_before: float) -> None:
    """``--data``: the data pipelines' table and JSON."""
    data = benchmark_data_pipelines(cfg, args.workers, args.data_images,
                                    args.data_image_size, args.steps)
    results = dict(
        config=args.config,
        mode='data',
        machine=machine('cpu', 1),
        data=data,
        load_average=dict(start=load_before, end=os.getloadavg()[0]))
    print_data_table(results)
    write_json(results, args.json)


def write_json(results: dict, path: Optional[str]) -> None:
    if path:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(results, f, indent=2)


def print_table(results: dict, steps: Dict[str, Callable]) -> None:
    m = results['machine']
    print(f"\n{results['config']} on {results['device']} "
          f"({m['cpu']}, {m['torch_threads']} threads"
          f"{', ' + m['gpu'] if 'gpu' in m else ''}, torch {m['torch']}), "
          f"batch {results['batch_size']}, median of {results['rounds']} "
          'interleaved rounds; 1-min load average '
          f"{results['load_average']['start']:.1f} -> "
          f"{results['load_average']['end']:.1f}"
          + ('' if results['cpu_steal'] is None else
             f"; CPU time stolen by the hypervisor while timing: "
             f"{100 * results['cpu_steal']:.1f}%"))
    options = [name for name in ('compile', 'no_malloc_trim') if results[name]]
    if options:
        print('options: ' + ', '.join(options))
    init = results['loss_at_init']
    print(f"loss at init: mvp {init['mvp']:.6f}, stock {init['stock']:.6f} "
          f"(|diff| {init['abs_diff']:.1e} <= {LOSS_TOLERANCE})")
    print(f"{'step':<10}{'s/step':>10}{'img/s':>10}{'peak MiB':>12}")
    for name in steps:
        print(f"{name:<10}{results['seconds'][name]:>10.3f}"
              f"{results['img_per_s'][name]:>10.2f}"
              f"{results['peak_memory_mib'][name]:>12.0f}")
    for name in ('teacher_mvp', 'teacher_stock'):
        print(f"{name:<14}{results['seconds'][name]:>6.3f} s forward")
    r, k = results['ratios'], results['masks']
    met = {key: 'met' if ok else 'NOT met'
           for key, ok in results['targets_met'].items()}
    target = TARGETS['mvp_vs_stock'][results['device']]
    print(f"mvp vs stock step:      {r['mvp_vs_stock']:.2f}x faster "
          f"(target >= {target}: {met['mvp_vs_stock']})")
    print(f"teacher overhead:       {r['teacher_overhead']:.2f}x the student "
          f"step (target <= {TARGETS['teacher_overhead']}: "
          f"{met['teacher_overhead']}; stock: "
          f"{r['stock_teacher_overhead']:.2f}x)")
    print(f"teacher forward:        stock / ours "
          f"{r['teacher_stock_vs_mvp']:.2f}x")
    f = results['model_flops']
    flops = f['tflop_per_step']
    mfu = 'n/a (give --peak-tflops)'
    if f['mfu'] is not None:
        mfu = f"{100 * f['mfu']:.1f}% of {f['peak_tflops']:.0f} TFLOP/s"
    if 'mfu' in met:
        mfu += (f" (target >= {100 * TARGETS['mfu']['cuda']:.0f}%: "
                f"{met['mfu']})")
    print(f"model FLOPs (mvp step):  {flops['total']:.3f} TFLOP = student "
          f"fwd+bwd {flops['student']:.3f} + teacher fwd "
          f"{flops['teacher']:.3f}; achieved {f['achieved_tflops']:.3f} "
          f'TFLOP/s; MFU {mfu}')
    if 'cp_slowdown' in r:
        print(f"activation checkpoint:  {r['cp_slowdown']:.2f}x slower")
    print(f"masks/s:                ours {k['ours_per_s']:.0f}, mmpretrain "
          f"{k['mmpretrain_per_s']:.0f} ({k['ratio']:.1f}x; target >= "
          f"{TARGETS['masks']}: {met['masks']})")


if __name__ == '__main__':
    main()
