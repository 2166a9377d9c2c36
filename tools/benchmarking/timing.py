"""Timing and memory of a training step: interleaved rounds, paired ratios,
the process's peak memory, and what the machine did meanwhile."""
import ctypes
import os
import statistics
import threading
import time
from typing import Callable, Dict, List

import torch
from torch import nn


def available_cores() -> List[int]:
    """The CPU cores this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


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
