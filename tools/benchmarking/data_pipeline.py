"""The training data pipeline's throughput per CPU core: ``tools/benchmark.py
CONFIG --data``.

On ImageNet-like JPEG files (random crops of scikit-image's real photos,
500 x 375, quality 90: :func:`mvp_mm.utils.make_photo_imagenet_folder`),
written to a temporary folder, this times in ONE run, in ``--workers``
processes (each pinned to one core, one thread for torch/OpenCV/OpenMP, as
a DataLoader worker runs), round by round with the order rotating:

- ``ours``: the config's training pipeline, built by the registry (loading,
  decoding, random resized crop, flip, mask, packing), fed what
  ``SeededSampler`` feeds it (a :class:`SeededIndex` per sample);
- ``exact``: the same with ``RandomResizedCropFromFile(exact=True)`` (full
  resolution decoding and Pillow: bit for bit the stock transforms), when
  the config's pipeline has that transform;
- ``stock``: mmpretrain's BEiT pre-training pipeline
  (``mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py``'s
  ``train_pipeline``: colour jitter, two-picture crop, BEiT masks).

Rates are images per second per worker (the medians of the rounds, then the
mean over workers) and per CPU second of the worker process; ratios are
medians of paired per-round ratios. It also compares the fast crop with the
exact one on every file (same seeds): PSNR of the output pixels, the
share decoded at each JPEG scale, whether the crop boxes are identical.
From the rate it gives the loader cores one GPU needs at
:data:`GPU_IMG_PER_S`.

With ``--shards DIR`` it times instead the same pipeline fed from class
folders and from tar shards of the same photos (:class:`ShardDataset`),
both written under ``DIR``: :func:`benchmark_shards_vs_folders`.

Paper: https://arxiv.org/abs/2203.05175
"""
import copy
import functools
import math
import multiprocessing
import os
import statistics
import tempfile
import time
import traceback
from glob import glob
from typing import Callable, Dict, List, Optional

import cv2
import numpy as np
import PIL
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import init_default_scope

import mvp_mm  # noqa: F401  (registers MVP's transforms)
from mmpretrain.registry import DATASETS, TRANSFORMS
from mvp_mm.datasets import SeededIndex
from mvp_mm.datasets.shard_writer import convert_to_shards
from mvp_mm.utils import make_photo_imagenet_folder, seed_cpu_rngs

STOCK_CONFIG = ('mmpretrain::beit/'
                'beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py')
FAST_CROP = 'RandomResizedCropFromFile'
# One H100 at 45% MFU on the ViT-B/16 MVP step (~140 GFLOP per image
# against ~990 TFLOP/s dense bf16): about 3,000 images per second.
GPU_IMG_PER_S = 3000
# The targets, per worker core on the measuring CPU.
TARGETS = dict(img_per_s_per_worker=200.0, ratio=2.0)


def pipelines(cfg: Config) -> Dict[str, list]:
    """``ours``, ``exact`` (when the config has the fast crop) and
    ``stock``: transform config lists."""
    ours = copy.deepcopy(cfg.train_dataloader.dataset.pipeline)
    result = dict(ours=ours)
    if any(t['type'] == FAST_CROP for t in ours):
        result['exact'] = [
            dict(t, exact=True) if t['type'] == FAST_CROP else t
            for t in copy.deepcopy(ours)
        ]
    result['stock'] = copy.deepcopy(get_config(STOCK_CONFIG).train_pipeline)
    return result


def _limit_to_one_core(core: Optional[int]) -> None:
    """As a DataLoader worker: one core, one thread everywhere."""
    if core is not None and hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _run_once(pipeline: Compose, files: List[str], round_index: int) -> None:
    """Every file through ``pipeline`` with round ``round_index``'s seeds
    (the stock pipeline draws from the global RNGs: seeded once)."""
    seeds = np.random.SeedSequence([round_index]).generate_state(len(files))
    seed_cpu_rngs(round_index)
    for index, path in enumerate(files):
        out = pipeline(
            dict(img_path=path, gt_label=0,
                 sample_idx=SeededIndex(index, int(seeds[index]))))
        if out is None:
            raise RuntimeError(f'The pipeline dropped {path}.')


def _pipeline_runs(configs: Dict[str, list],
                   files: List[str]) -> Dict[str, Callable[[int], None]]:
    """``{name: run(round)}``: every file through each pipeline."""
    return {
        name: functools.partial(_run_once, Compose(cfg), files)
        for name, cfg in configs.items()
    }


def _time_rounds(worker: int, core: Optional[int],
                 make_runs: Callable[[], Dict[str, Callable[[int], None]]],
                 rounds: int) -> Dict[str, list]:
    """Time each of ``make_runs()`` ``rounds`` times, order rotating:
    ``{name: [(wall_s, cpu_s), ...]}``."""
    _limit_to_one_core(core)
    init_default_scope('mmpretrain')
    runs = make_runs()
    names = list(runs)
    for name in names:  # warm-up: imports, caches, first-call costs
        runs[name](0)
    times = {name: [] for name in names}
    for r in range(1, rounds + 1):
        shift = (r + worker) % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = time.perf_counter(), time.process_time()
            runs[name](r)
            times[name].append((time.perf_counter() - wall,
                                time.process_time() - cpu))
    return times


def _worker(worker: int, queue, *args) -> None:
    """:func:`_time_rounds` in a worker process; puts ``(worker, times)``
    or ``(worker, the error's traceback)`` on ``queue``."""
    try:
        queue.put((worker, _time_rounds(worker, *args)))
    except BaseException:
        queue.put((worker, traceback.format_exc()))


def time_runs(make_runs: Callable[[], Dict[str, Callable[[int], None]]],
              workers: int, rounds: int) -> List[Dict[str, list]]:
    """Per worker: ``{name: [(wall_s, cpu_s) per round]}``; each worker
    builds its own runs with ``make_runs()`` (after the fork)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(
        os, 'sched_getaffinity') else [None]
    context = multiprocessing.get_context('fork')
    queue = context.Queue()
    processes = [
        context.Process(
            target=_worker,
            args=(w, queue, cores[w % len(cores)], make_runs, rounds))
        for w in range(workers)
    ]
    for p in processes:
        p.start()
    results = dict(queue.get() for _ in processes)
    for p in processes:
        p.join()
    for worker, result in sorted(results.items()):
        if isinstance(result, str):
            raise RuntimeError(f'Benchmark worker {worker} failed:\n{result}')
    return [results[w] for w in range(workers)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, dB (inf if equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64))**2)
    return math.inf if mse == 0 else 10 * math.log10(255.**2 / mse)


def compare_fast_and_exact(ours: list, files: List[str]) -> Optional[dict]:
    """The fast crop vs the exact one on every file, same seeds: PSNR of
    the outputs, decode scales used, identical crop boxes."""
    crop_cfg = next((t for t in ours if t['type'] == FAST_CROP), None)
    if crop_cfg is None:
        return None
    init_default_scope('mmpretrain')
    fast = TRANSFORMS.build(dict(crop_cfg, exact=False))
    exact = TRANSFORMS.build(dict(crop_cfg, exact=True))
    values, scales, same_boxes = [], [], True
    for seed, path in enumerate(files):
        seed_cpu_rngs(seed)
        a = fast(dict(img_path=path))
        seed_cpu_rngs(seed)
        b = exact(dict(img_path=path))
        values.append(psnr(a['img'], b['img']))
        scales.append(a['decode_scale'])
        same_boxes &= bool(np.array_equal(a['crop_bbox'], b['crop_bbox']))
    def stats(psnrs: List[float]) -> dict:
        return dict(min=min(psnrs), median=statistics.median(psnrs))

    return dict(
        psnr_db=stats(values),
        psnr_db_by_decode_scale={
            str(s): stats([v for v, vs in zip(values, scales) if vs == s])
            for s in sorted(set(scales))
        },
        identical_outputs=values.count(math.inf),
        decode_scales={str(s): scales.count(s) for s in sorted(set(scales))},
        same_crop_boxes=same_boxes,
        images=len(values))


def summarise(per_worker: List[Dict[str, list]], images: int) -> dict:
    """Rates per worker, CPU time per image, paired ratios."""
    names = list(per_worker[0])
    rates = {
        name: [images / statistics.median(w for w, _ in times[name])
               for times in per_worker]
        for name in names
    }

    def paired(slow: str, fast: str) -> float:
        return statistics.median(
            s[0] / f[0] for times in per_worker
            for s, f in zip(times[slow], times[fast]))

    result = {f'{name}_img_per_s_per_worker': statistics.mean(rates[name])
              for name in names}
    result['ratio'] = paired('stock', 'ours')
    if 'exact' in names:
        result['ratio_vs_exact'] = paired('exact', 'ours')
    result['cpu_ms_per_img'] = {
        name: 1e3 * statistics.median(
            c for times in per_worker for _, c in times[name]) / images
        for name in names
    }
    # What a worker delivers per second of CPU it gets: the rate on an idle
    # core, whatever else shares the machine while timing.
    result['img_per_cpu_s'] = {
        name: 1e3 / ms for name, ms in result['cpu_ms_per_img'].items()
    }
    result['img_per_s_per_worker_by_worker'] = rates
    result['img_per_s_all_workers'] = {n: sum(r) for n, r in rates.items()}
    return result


def benchmark_data_pipelines(cfg: Config, workers: int, num_images: int,
                             image_size: tuple, rounds: int) -> dict:
    """The ``data`` section of the benchmark's JSON."""
    per_class = -(-num_images // 4)
    with tempfile.TemporaryDirectory() as root:
        make_photo_imagenet_folder(
            root, num_classes=4, images_per_class=per_class,
            image_size=tuple(image_size), quality=90)
        files = sorted(glob(os.path.join(root, 'train', '*', '*.JPEG')))
        configs = pipelines(cfg)
        comparison = compare_fast_and_exact(configs['ours'], files)
        per_worker = time_runs(
            functools.partial(_pipeline_runs, configs, files), workers,
            rounds)
    data = summarise(per_worker, len(files))
    ours = data['ours_img_per_s_per_worker']
    data.update(
        workers=workers,
        images=len(files),
        image_size=list(image_size),
        jpeg_quality=90,
        rounds=rounds,
        fast_vs_exact=comparison,
        gpu_img_per_s=GPU_IMG_PER_S,
        loader_cores_per_gpu={
            name: GPU_IMG_PER_S / data[f'{name}_img_per_s_per_worker']
            for name in per_worker[0]
        },
        loader_cores_per_gpu_at_cpu_rate={
            name: GPU_IMG_PER_S / rate
            for name, rate in data['img_per_cpu_s'].items()
        },
        targets_met=dict(
            img_per_s_per_worker=ours >= TARGETS['img_per_s_per_worker'],
            img_per_cpu_s=data['img_per_cpu_s']['ours'] >=
            TARGETS['img_per_s_per_worker'],
            ratio=data['ratio'] >= TARGETS['ratio']),
        libraries=dict(pillow=PIL.__version__, opencv=cv2.__version__,
                       torch=torch.__version__))
    return data


def print_data_table(results: dict) -> None:
    d, m = results['data'], results['machine']
    print(f"\n{results['config']}: training data pipeline, {d['workers']} "
          f"worker process(es), one core and one thread each ({m['cpu']}, "
          f"{m['cpu_count']} CPUs); {d['images']} JPEGs "
          f"{d['image_size'][0]}x{d['image_size'][1]} q{d['jpeg_quality']}, "
          f"median of {d['rounds']} interleaved rounds; 1-min load average "
          f"{results['load_average']['start']:.1f} -> "
          f"{results['load_average']['end']:.1f}")
    print(f"{'pipeline':<10}{'img/s/worker':>14}{'CPU ms/img':>12}"
          f"{'img/CPU-s':>11}{'cores/GPU':>11}")
    for name in d['cpu_ms_per_img']:
        rate = d[f'{name}_img_per_s_per_worker']
        print(f"{name:<10}{rate:>14.1f}{d['cpu_ms_per_img'][name]:>12.2f}"
              f"{d['img_per_cpu_s'][name]:>11.1f}"
              f"{d['loader_cores_per_gpu'][name]:>11.1f}")
    met = {k: 'met' if v else 'NOT met' for k, v in d['targets_met'].items()}
    target = TARGETS['img_per_s_per_worker']
    print(f"ours vs stock: {d['ratio']:.2f}x per core (target >= "
          f"{TARGETS['ratio']}: {met['ratio']})"
          + (f"; vs exact: {d['ratio_vs_exact']:.2f}x"
             if 'ratio_vs_exact' in d else ''))
    print(f"ours per core: {d['ours_img_per_s_per_worker']:.0f} img/s "
          f"(target >= {target:.0f}: {met['img_per_s_per_worker']}); "
          f"{d['img_per_cpu_s']['ours']:.0f} img per CPU second "
          f"({met['img_per_cpu_s']})")
    cores = d['loader_cores_per_gpu_at_cpu_rate']
    print(f"loader cores per GPU at {GPU_IMG_PER_S} img/s: last column (wall "
          f"rate); at the CPU-second rate ours {cores['ours']:.1f}, stock "
          f"{cores['stock']:.1f}")
    c = d['fast_vs_exact']
    if c is not None:
        print(f"fast vs exact crop: PSNR min {c['psnr_db']['min']:.1f} dB, "
              f"median {c['psnr_db']['median']:.1f} dB over {c['images']} "
              f"images ({c['identical_outputs']} identical); JPEG decode "
              f"scales used {c['decode_scales']}; same crop boxes: "
              f"{c['same_crop_boxes']}")


# ------------------------------------------------- shards against folders
#: The benchmark's shard size: its photos fill several shards (a sample's
#: cost does not depend on the shard size: members are read at their
#: offsets from an mmap).
SHARDS_BENCH_MB = 1.0
#: Shards may not be slower than folders; the paired ratio's noise on a
#: shared machine is a few per cent.
SHARDS_TARGET = 0.97


def _read_all(dataset, round_index: int) -> None:
    """Every sample of ``dataset``, in a shuffled order (as training draws
    them), with round ``round_index``'s per-sample seeds."""
    seeds = np.random.SeedSequence([round_index]).generate_state(
        len(dataset))
    order = np.random.default_rng(round_index).permutation(len(dataset))
    for index in order:
        if dataset[SeededIndex(int(index), int(seeds[index]))] is None:
            raise RuntimeError(f'The dataset dropped sample {index}.')


def _dataset_runs(configs: Dict[str, dict]
                  ) -> Dict[str, Callable[[int], None]]:
    """``{name: run(round)}``: every sample of each dataset."""
    return {
        name: functools.partial(_read_all, DATASETS.build(cfg))
        for name, cfg in configs.items()
    }


def _same_samples(configs: Dict[str, dict], count: int = 8) -> bool:
    """The folder and shard datasets give the same first samples."""
    init_default_scope('mmpretrain')
    folders, shards = (DATASETS.build(configs[n])
                       for n in ('folders', 'shards'))
    return all(
        torch.equal(folders[SeededIndex(i, i)]['inputs'],
                    shards[SeededIndex(i, i)]['inputs'])
        for i in range(min(count, len(folders))))


def benchmark_shards_vs_folders(cfg: Config, scratch: str, workers: int,
                                num_images: int, image_size: tuple,
                                rounds: int) -> dict:
    """The ``shards`` section of the benchmark's JSON (``--data --shards
    DIR``): the config's training pipeline fed by the folder dataset
    (``CustomDataset`` over class folders of photos) and by
    :class:`ShardDataset` over the same photos converted with
    ``tools/make_shards.py``'s converter, interleaved round by round in
    ``workers`` one-core processes; both written under ``scratch`` (put it
    on the file system to measure) and removed afterwards."""
    os.makedirs(scratch, exist_ok=True)
    pipeline = copy.deepcopy(cfg.train_dataloader.dataset.pipeline)
    with tempfile.TemporaryDirectory(dir=scratch,
                                     prefix='mvp_mm_benchmark_') as root:
        make_photo_imagenet_folder(
            root, num_classes=4, images_per_class=-(-num_images // 4),
            image_size=tuple(image_size), quality=90)
        shards = os.path.join(root, 'shards')
        start = time.perf_counter()
        converted = convert_to_shards(os.path.join(root, 'train'), shards,
                                      SHARDS_BENCH_MB)
        conversion_s = time.perf_counter() - start
        configs = dict(
            folders=dict(type='CustomDataset', data_root=root,
                         data_prefix='train', pipeline=pipeline),
            shards=dict(type='ShardDataset', data_root=shards,
                        pipeline=pipeline))
        same = _same_samples(configs)
        per_worker = time_runs(functools.partial(_dataset_runs, configs),
                               workers, rounds)
    images = converted['samples']
    rates = {
        name: statistics.mean(
            images / statistics.median(w for w, _ in times[name])
            for times in per_worker)
        for name in configs
    }
    cpu_ms = {
        name: 1e3 * statistics.median(
            c for times in per_worker for _, c in times[name]) / images
        for name in configs
    }
    ratio = statistics.median(  # folder time / shard time, paired
        f[0] / s[0] for times in per_worker
        for f, s in zip(times['folders'], times['shards']))
    return dict(
        scratch=scratch,
        workers=workers,
        images=images,
        image_size=list(image_size),
        jpeg_quality=90,
        rounds=rounds,
        shards=converted['shards'],
        shard_size_mb=SHARDS_BENCH_MB,
        folders_img_per_s_per_worker=rates['folders'],
        shards_img_per_s_per_worker=rates['shards'],
        ratio_shards_vs_folders=ratio,
        cpu_ms_per_img=cpu_ms,
        img_per_cpu_s={n: 1e3 / ms for n, ms in cpu_ms.items()},
        same_samples=same,
        conversion=dict(
            seconds=conversion_s,
            mb_per_s=converted['image_bytes'] / 1e6 / conversion_s,
            img_per_s=images / conversion_s),
        targets_met=dict(shards_not_slower=ratio >= SHARDS_TARGET),
        raw_seconds=per_worker)


def print_shards_table(results: dict) -> None:
    d = results['shards']
    print(f"\n{results['config']}: training data pipeline from folders and "
          f"from shards of the same {d['images']} photos "
          f"({d['image_size'][0]}x{d['image_size'][1]} q{d['jpeg_quality']}"
          f", {d['shards']} shards) under {d['scratch']}, {d['workers']} "
          f"worker process(es), one core each, median of {d['rounds']} "
          'interleaved rounds; 1-min load average '
          f"{results['load_average']['start']:.1f} -> "
          f"{results['load_average']['end']:.1f}")
    print(f"{'source':<10}{'img/s/worker':>14}{'CPU ms/img':>12}"
          f"{'img/CPU-s':>11}")
    for name in ('folders', 'shards'):
        print(f"{name:<10}{d[f'{name}_img_per_s_per_worker']:>14.1f}"
              f"{d['cpu_ms_per_img'][name]:>12.2f}"
              f"{d['img_per_cpu_s'][name]:>11.1f}")
    met = 'met' if d['targets_met']['shards_not_slower'] else 'NOT met'
    print(f"shards vs folders: {d['ratio_shards_vs_folders']:.3f}x per core "
          f"(target >= {SHARDS_TARGET}: {met}); same samples: "
          f"{d['same_samples']}; conversion {d['conversion']['mb_per_s']:.1f}"
          f" MB/s ({d['conversion']['img_per_s']:.0f} images/s)")
