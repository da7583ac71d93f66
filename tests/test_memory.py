"""Steady host memory (jemkit/memory.py): freed blocks stay in the process, so reallocating them costs no page faults."""
import os
import subprocess
import sys
import textwrap

import pytest

from jemkit import memory

GLIBC = memory._glibc() is not None and memory._preloaded_allocator() is None

# Allocate, touch and free a 48 MB tensor ten times (above glibc's largest dynamic mmap threshold, 32 MB, so
# by default every allocation is a fresh mmap); print the median minor page faults of the last five rounds
# (steady memory can take a few rounds to settle: which rounds varies from process to process).
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
    print(applied, sorted(faults[5:])[2])
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
    assert default >= pages  # glibc as it comes: every round maps (and faults in) fresh pages
    assert steady < 0.05 * default  # steady: the freed block is reused


@pytest.mark.skipif(not GLIBC, reason="mallopt needs glibc without a preloaded allocator")
def test_steady_memory_can_be_turned_off_by_environment():
    applied, faults = _probe("steady", {memory.ENV: "0"})
    assert applied == "False" and faults >= 48 * 2**20 // 4096


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
def test_jemkit_train_applies_steady_memory_as_configured(tmp_path, monkeypatch, steady):
    from jemkit.cli import main

    calls = []
    monkeypatch.setattr(memory, "steady_host_memory", lambda: calls.append(1) or True)
    assert main(["train", "--preset", "digits-baseline", "--out", str(tmp_path / "run"), "--quiet", "--set", "train.steps=1",
                 "--set", "model.width=4", "--set", f"train.steady_memory={str(steady).lower()}",
                 "--set", "train.tensorboard=false"]) == 0
    assert calls == ([1] if steady else [])


def test_train_from_python_leaves_the_host_allocator_alone(tmp_path, monkeypatch):
    from jemkit.config import load_preset
    from jemkit.training import train

    calls = []
    monkeypatch.setattr(memory, "steady_host_memory", lambda: calls.append(1) or True)
    train(load_preset("digits-baseline", ["train.steps=1", "model.width=4", "train.tensorboard=false"]), tmp_path / "run",
          progress=False)
    assert calls == []


TRAIN = """
import csv, sys
from jemkit.config import load_preset
from jemkit.memory import steady_host_memory
from jemkit.training import train
steady_host_memory()
cfg = load_preset("digits-jem", ["train.steps=40", "model.width=16", "buffer.size=200", "sampler.steps=5",
                                 "train.log_every=10", "train.eval_every=1000", "train.sample_every=1000",
                                 "train.tensorboard=false", "train.checkpoint_every=0"])
train(cfg, sys.argv[1], progress=False)
"""


def test_metrics_csv_reports_host_memory_without_growth_or_faults_after_warm_up(tmp_path):
    """metrics.csv's rss_mb / peak_rss_mb / faults_per_step (a fresh process, steady memory as configured by
    default): RSS flat after the first interval, and steps between evaluations touch (almost) no new pages."""
    import csv

    subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / "run")], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["10", "20", "30", "40"]
    rss = [float(r["rss_mb"]) for r in rows]
    peak = [float(r["peak_rss_mb"]) for r in rows]
    faults = [float(r["faults_per_step"]) for r in rows]
    assert all(0 < a <= b for a, b in zip(rss, peak)) and peak == sorted(peak)
    assert faults[0] > 0  # the first interval allocates the working set
    assert max(faults[1:3]) < 20, faults  # then a few Python objects per step, no activations (step 40 also evaluates)
    assert rss[2] - rss[1] < 2, rss  # no growth between evaluations
