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
``tools/benchmarking/data_pipeline.py``); with ``--data --shards DIR``, the
same pipeline fed from tar shards against class folders of the same photos
(docs/shards.md).

Examples::

    python tools/benchmark.py configs/pretrain/mvp_vit-b16_300e_in1k.py \
        --device cpu --threads 2 --batch-size 8 --json work_dirs/bench.json
    python tools/benchmark.py configs/pretrain/mvp_vit-b16_300e_in1k.py \
        --data --workers 2 --json work_dirs/data.json
    python tools/benchmark.py configs/pretrain/mvp_vit-b16_300e_in1k.py \
        --data --shards /scratch/$USER --json work_dirs/shards.json

The arguments are checked before torch and mvp_mm are imported
(tools/argument_checks.py), so ``--help`` and a wrong argument answer at
once.

Paper: https://arxiv.org/abs/2203.05175
"""
from __future__ import annotations  # the annotations name lazy imports

import argparse
import os
import os.path as osp
import statistics
import tempfile
from typing import TYPE_CHECKING

from argument_checks import (add_cfg_options, config_file, existing_file,
                             output_file)

if TYPE_CHECKING:
    from mmengine.config import Config


def parse_args():
    parser = argparse.ArgumentParser(
        description='Benchmark the MVP training step against stock parts')
    parser.add_argument('config', type=config_file,
                        help='a pretrain config file')
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
        type=existing_file('CLIP checkpoint',
                           'pass an open_clip/OpenAI-layout state dict file, '
                           'or leave the flag out for a random CLIP',
                           pattern='*.pt*'),
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
        '--workers', type=int,
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
    parser.add_argument(
        '--shards', metavar='DIR',
        help='--data: time the pipeline fed from tar shards against class '
        'folders of the same photos, both written under DIR (put it on the '
        'file system to measure) and removed afterwards')
    parser.add_argument('--json', type=output_file,
                        help='write the results to this file')
    add_cfg_options(parser, 'model.backbone.arch=large')
    return parser.parse_args()


def main():
    args = parse_args()  # before the imports: --help and errors at once
    import torch
    from mmengine.config import Config
    from mmengine.logging import MMLogger

    import mvp_mm  # noqa: F401  (registers MVP's modules)
    from mvp_mm.utils import mvp_step_flops

    from benchmarking.baselines import (build_models, build_optimizers,
                                        check_equal_loss, make_batch,
                                        write_random_clip)
    from benchmarking.masks import benchmark_masks
    from benchmarking.report import (TARGETS, machine, peak_tflops,
                                     print_table, utilisation, write_json)
    from benchmarking.timing import (PeakMemory, available_cores, cpu_ticks,
                                     keep_freed_memory, paired_ratio,
                                     steal_share, time_interleaved,
                                     train_step)
    if args.workers is None:
        args.workers = len(available_cores())
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda, but torch sees no CUDA device.')
    torch.set_num_threads(args.threads)
    if args.no_malloc_trim and args.device == 'cpu':
        keep_freed_memory()
    MMLogger.get_instance('benchmark', log_level='WARNING')
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
    """``--data``: the data pipelines' table and JSON (``--shards``: shards
    against folders)."""
    from benchmarking import data_pipeline
    from benchmarking.report import machine, write_json
    sizes = (args.workers, args.data_images, args.data_image_size, args.steps)
    if args.shards:
        mode, key, print_results = ('data-shards', 'shards',
                                    data_pipeline.print_shards_table)
        measured = data_pipeline.benchmark_shards_vs_folders(
            cfg, args.shards, *sizes)
    else:
        mode, key, print_results = ('data', 'data',
                                    data_pipeline.print_data_table)
        measured = data_pipeline.benchmark_data_pipelines(cfg, *sizes)
    results = {
        'config': args.config,
        'mode': mode,
        'machine': machine('cpu', 1),
        key: measured,
        'load_average': dict(start=load_before, end=os.getloadavg()[0]),
    }
    print_results(results)
    write_json(results, args.json)


if __name__ == '__main__':
    main()
