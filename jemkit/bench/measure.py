"""Measurements: wall time (CUDA-synchronized), minor page faults, peak and current RSS, peak CUDA
memory, FLOPs by ``torch.utils.flop_counter``, and the machine's ceilings (matmul, 1×1 conv).

The ceilings are timed by ``torch.utils.benchmark.Timer.blocked_autorange`` (blocks of calls, the
clock synchronized with the GPU). A contender's call is not: ``measure`` times exactly one call,
with the page faults and peak RSS of that call, so the benchmark can interleave the contenders one
call at a time (and time the textbook in its own process). ``Timer`` cannot do that: ``timeit(1)``
makes two untimed warm-up calls before the timed one, ``blocked_autorange`` an untimed sizing call
before each measurement, and both run on one thread unless told otherwise.
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..memory import rss_mb, status_kb

_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next peak is this measurement's; False if not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Sample:
    seconds: float
    page_faults: int  # minor faults (fresh pages touched), process-wide
    peak_rss_mb: float | None  # this call's peak if VmHWM could be reset, else the process peak
    rss_rise_mb: float | None  # peak − RSS before the call: the call's own working memory
    rss_after_mb: float | None
    cuda_peak_mb: float | None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device) -> Sample:
    """Run fn once and measure it; the GPU is synchronized before the clock starts and before it stops."""
    sync(device)
    reset, before = reset_peak_rss(), rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    fn()
    sync(device)
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    hwm = status_kb("VmHWM") if reset else None
    peak = hwm / 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    rise = peak - before if reset and before is not None else None
    return Sample(seconds, faults, peak, rise, rss_mb(), cuda)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one eager call of fn, counted per aten op (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()  # its module hooks break autograd.grad over parameters that require grad
    with counter:
        fn()
    return int(counter.get_total_flops())


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker: every FLOP counts toward 'Global' only."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def ceiling_sizes(device: torch.device, quick: bool) -> dict:
    if quick:
        return {"matmul_n": 256, "conv": (8, 64, 8)}
    if device.type == "cuda":
        return {"matmul_n": 8192, "conv": (256, 512, 32)}
    return {"matmul_n": 2048, "conv": (64, 256, 32)}  # conv: batch, channels, H = W


def best_seconds(fn: Callable[[], object], min_run_time: float = 0.2) -> float:
    """Fastest per-call time of fn over ``Timer.blocked_autorange`` blocks, on the process's threads."""
    from torch.utils.benchmark import Timer

    timer = Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return min(timer.blocked_autorange(min_run_time=min_run_time).times)


def measure_ceilings(device: torch.device, quick: bool) -> dict[str, float]:
    """GFLOP/s of a large n×n matmul and a large 1×1 convolution (C → C channels), float32 and bfloat16;
    the fastest block of ``best_seconds``."""
    size = ceiling_sizes(device, quick)
    n = size["matmul_n"]
    batch, c, hw = size["conv"]
    out = {}
    for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        x = torch.randn(batch, c, hw, hw, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 1, 1, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        for name, fn, flops in ((f"matmul_{tag}", lambda: a @ b, 2 * n**3),
                                (f"conv1x1_{tag}", lambda: F.conv2d(x, w), 2 * batch * hw * hw * c * c)):
            out[name] = flops / best_seconds(fn, 0.05 if quick else 0.2) / 1e9
    return out
