"""The step benchmark's targets, model FLOPs utilisation, machine
description, table and JSON."""
import json
import os
import os.path as osp
import platform
from typing import Callable, Dict, Optional

import torch

from .baselines import LOSS_TOLERANCE

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
