"""Steady host memory: keep freed memory in the process instead of returning it to the OS.

An SGLD step allocates and frees the same activation buffers (megabytes each) 20 times per
training iteration. glibc's malloc serves blocks above its mmap threshold with fresh ``mmap``
pages and gives trimmed heap tops back with ``brk``, so every step touches new pages: tens of
thousands of minor page faults per sampling call and a third of its wall time on the Fashion-MNIST
CNN (``jemkit bench`` measures it: the textbook loop in a plain process against the same loop with
these settings). Two ``mallopt`` settings stop the churn:

    M_MMAP_MAX = 0        large blocks come from the heap too, so a freed block is reused
    M_TRIM_THRESHOLD = −1 the heap is never trimmed: RSS stays at the run's peak

The same as starting Python with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge>``. Applied by
the ``jemkit`` command line (``jemkit train`` per ``train.steady_memory``); ``train()`` called from Python
leaves the allocator alone, and library users call ``steady_host_memory()`` once. Only glibc has ``mallopt``: on other C libraries (macOS, musl) or
under a preloaded jemalloc / tcmalloc (which keep memory themselves) it does nothing.
``JEMKIT_STEADY_MEMORY=0`` turns it off everywhere. The settings are process-wide and cannot be
undone: glibc's dynamic threshold adjustment stays off for the rest of the process.

``host_memory()`` reads what a run reports (``metrics.csv``: ``rss_mb``, ``peak_rss_mb``,
``faults_per_step``): the process's resident memory now and at its peak, and its minor page faults.
"""
from __future__ import annotations

import ctypes
import logging
import os
import resource
import sys
from pathlib import Path

log = logging.getLogger("jemkit")

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc <malloc.h>
ENV = "JEMKIT_STEADY_MEMORY"
_applied: bool | None = None  # None: not tried yet in this process


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError on musl and other C libraries
        return libc
    except (OSError, AttributeError):
        return None


def _preloaded_allocator() -> str | None:
    for lib in os.environ.get("LD_PRELOAD", "").split():
        name = os.path.basename(lib)
        if "jemalloc" in name or "tcmalloc" in name or "mimalloc" in name:
            return name
    return None


def steady_host_memory() -> bool:
    """Apply the settings above once per process; True if they are in effect (see the module docstring)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    libc = _glibc()
    if libc is None or _preloaded_allocator() is not None:
        return False
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
    if not ok:
        log.warning("steady host memory: glibc refused mallopt; freed memory may still go back to the OS")
    _applied = ok
    return ok


_STATUS = Path("/proc/self/status")


def status_kb(field: str) -> float | None:
    """A ``/proc/self/status`` field in kB (``VmRSS``, ``VmHWM``); None where there is no /proc."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    """Resident set size now, MiB."""
    kb = status_kb("VmRSS")
    return None if kb is None else kb / 1024


def host_memory() -> dict[str, float | None]:
    """This process: ``rss_mb`` (now), ``peak_rss_mb`` (its peak so far, MiB; from getrusage where /proc is
    missing) and ``minor_faults`` (fresh pages touched since it started)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hwm = status_kb("VmHWM")
    return {"rss_mb": rss_mb(), "peak_rss_mb": hwm / 1024 if hwm is not None else usage.ru_maxrss / 1024,
            "minor_faults": float(usage.ru_minflt)}
