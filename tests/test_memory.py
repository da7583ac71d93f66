"""Steady host memory (jemkit/memory.py): freed blocks stay in the process, so reallocating them costs no page faults."""
import os
import subprocess
import sys
import textwrap

import pytest

from jemkit import memory

GLIBC = memory._glibc() is not None and memory._preloaded_allocator() is None

# Allocate, touch and free a 48 MB tensor ten times (above glibc's largest dynamic mmap threshold, 32 MB, so
# by default every allocation is a fresh mmap); print the minor page faults of the last five rounds.
PROBE = textwrap.dedent("""
    import resource, sys, torch
    from jemkit.memory import steady_host_memory
    applied = steady_host_memory() if sys.argv[1] == "steady" else False
    faults = []
    for _ in range(10):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = torch.ones(12 * 2**20)  # 48 MB, written
        del x
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(applied, sum(faults[5:]))
""")


def _probe(mode: str, env: dict | None = None) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not GLIBC, reason="mallopt needs glibc without a preloaded allocator")
def test_steady_memory_stops_page_fault_churn():
    applied, steady = _probe("steady")
    assert applied == "True"
    _, default = _probe("default")
    pages = 48 * 2**20 // 4096
    assert default > 4 * pages  # glibc as it comes: every round maps (and faults in) fresh pages
    assert steady < 0.05 * default  # steady: the freed block is reused


@pytest.mark.skipif(not GLIBC, reason="mallopt needs glibc without a preloaded allocator")
def test_steady_memory_can_be_turned_off_by_environment():
    applied, faults = _probe("steady", {memory.ENV: "0"})
    assert applied == "False" and faults > 4 * (48 * 2**20 // 4096)


def test_steady_memory_is_applied_once_and_reports_the_same(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)
    calls = []
    monkeypatch.setattr(memory, "_glibc", lambda: calls.append(1) or None)  # a C library without mallopt
    assert memory.steady_host_memory() is False and memory.steady_host_memory() is False
    assert calls == [1]


def test_preloaded_allocators_are_left_alone(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert memory._preloaded_allocator() == "libjemalloc.so.2"
    monkeypatch.setattr(memory, "_applied", None)
    assert memory.steady_host_memory() is False


@pytest.mark.parametrize("steady", [True, False])
def test_training_applies_steady_memory_as_configured(tmp_path, monkeypatch, steady):
    from jemkit.config import load_preset
    from jemkit.training import trainer

    calls = []
    monkeypatch.setattr(trainer, "steady_host_memory", lambda: calls.append(1) or True)
    cfg = load_preset("digits-baseline", ["train.steps=1", "model.width=4", f"train.steady_memory={str(steady).lower()}",
                                          "train.tensorboard=false"])
    trainer.train(cfg, tmp_path / "run", progress=False)
    assert calls == ([1] if steady else [])
