"""Reliability: exact resume after SIGKILL, atomic and verified checkpoints, the divergence guard,
no code execution from files, clean stops on signals, write errors reported, flat memory."""
import csv
import errno
import gc
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import jemkit
from jemkit.cli import main
from jemkit.config import load_preset
from jemkit import checkpoint as ckpt_mod
from jemkit.checkpoint import CheckpointWriteError, CorruptCheckpoint, resolve_checkpoint
from jemkit.training import Callback, DivergenceError, train
from jemkit.training.guard import check_step
from jemkit.training import steps as steps_mod
from jemkit.objectives import LossOutput

TINY = ["model.width=8", "buffer.size=200", "sampler.steps=5", "train.log_every=5", "train.eval_every=20",
        "train.sample_every=50"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_cmd(out: Path, steps: int, extra=()) -> list[str]:
    sets = [f"train.steps={steps}", "train.checkpoint_every=7", *TINY, *extra]
    return [sys.executable, "-m", "jemkit", "train", "--preset", "digits-jem", "--out", str(out), "--quiet",
            *[a for s in sets for a in ("--set", s)]]


def final_tensors(run: Path) -> dict[str, torch.Tensor]:
    record = resolve_checkpoint(run)
    stem = record.name[: -len(".json")]
    out = {f"w.{k}": v for k, v in load_file(str(record.with_name(stem + ".safetensors"))).items()}
    out["buffer"] = load_file(str(record.with_name(stem + ".buffer.safetensors")))["x"]
    return out


def latest_step(run: Path) -> int:
    steps = [int(p.name[5:13]) for p in (run / "checkpoints").glob("step_*.json")] if (run / "checkpoints").is_dir() else []
    return max(steps, default=-1)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_bitwise_identical(tmp_path):
    steps = 120
    ref = subprocess.run(train_cmd(tmp_path / "ref", steps), env=ENV, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr

    rng = random.Random(1234)  # a seeded list of kill points: after checkpoint k, wait a random fraction of a second
    targets = sorted(rng.sample(range(7, steps - 7, 7), 4))
    run, kills = tmp_path / "run", 0
    for target in targets:
        proc = subprocess.Popen(train_cmd(run, steps), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while latest_step(run) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))  # land anywhere: mid-step, mid-SGLD, mid-write
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3, "the run finished before the kills; make it longer"
    done = subprocess.run(train_cmd(run, steps), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in (run / "events.log").read_text()

    a, b = final_tensors(tmp_path / "ref"), final_tensors(run)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    steps_logged = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps_logged == sorted(set(steps_logged)), "metrics.csv must not repeat steps after a resume"


def _tiny_run(tmp_path, steps=21, extra=(), callbacks=()):
    cfg = load_preset("digits-jem", [f"train.steps={steps}", "train.checkpoint_every=7", *TINY, *extra])
    return train(cfg, tmp_path / "run", progress=False, callbacks=callbacks), cfg


def _poisoned(out: LossOutput) -> LossOutput:
    """A NaN loss and data energy, as a blown-up energy would give."""
    nan = float("nan")
    return LossOutput(out.loss * nan, {**out.stats, "e_data": out.stats.get("e_data", out.loss) * nan})


class NanAt(Callback):
    """Fault injection: a NaN energy at step ``at``, once (the step runs again after the rollback)."""

    def __init__(self, at: int):
        self.at, self.fired = at, False

    def on_loss(self, step, out):
        if step != self.at or self.fired:
            return out
        self.fired = True
        return _poisoned(out)


class LrTimesAt(Callback):
    """Fault injection: the lr of step ``at`` multiplied by ``mult``, once."""

    def __init__(self, at: int, mult: float):
        self.at, self.mult, self.fired = at, mult, False

    def on_step_start(self, step, optimizer):
        if step == self.at and not self.fired:
            self.fired = True
            for group in optimizer.param_groups:
                group["lr"] *= self.mult


def test_corrupt_or_truncated_latest_checkpoint_is_skipped(tmp_path, caplog):
    (result, cfg) = _tiny_run(tmp_path)
    ckpts = tmp_path / "run" / "checkpoints"
    assert resolve_checkpoint(tmp_path / "run").name == "step_00000021.json"
    weights = ckpts / "step_00000021.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with caplog.at_level("WARNING", logger="jemkit"):
        assert resolve_checkpoint(tmp_path / "run").name == "step_00000014.json"
    assert "skipping corrupt checkpoint" in caplog.text and "checksum" in caplog.text
    assert jemkit.load(tmp_path / "run").record["step"] == 14
    (ckpts / "step_00000014.json").write_text('{"format": "jemkit-checkp')  # a torn record
    assert resolve_checkpoint(tmp_path / "run").name == "step_00000007.json"
    # resuming with more steps falls back to step 7 and completes
    train(load_preset("digits-jem", ["train.steps=28", "train.checkpoint_every=7", *TINY]), tmp_path / "run",
          resume=True, progress=False)
    assert "resumed from step_00000007.json" in (tmp_path / "run" / "events.log").read_text()
    assert resolve_checkpoint(tmp_path / "run").name == "step_00000028.json"


def test_interrupted_write_leaves_previous_checkpoint_valid(tmp_path, monkeypatch):
    _tiny_run(tmp_path, steps=7)
    ckpts = tmp_path / "run" / "checkpoints"

    def crash(tensors, path):  # a write that dies half way
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod, "save_file", crash)
    model = jemkit.load(tmp_path / "run")
    with pytest.raises(CheckpointWriteError, match="No space left on device"):
        ckpt_mod.save_checkpoint(ckpts, 99, model, {"arch": "cnn"})
    assert not list(ckpts.glob(".*.tmp")), "temporary files are removed"
    assert resolve_checkpoint(tmp_path / "run").name == "step_00000007.json"


def test_keeps_last_k_and_best(tmp_path):
    _tiny_run(tmp_path, steps=35, extra=["train.keep_last=2", "train.eval_every=7", "optim.warmup=0", "optim.lr=0.003"])
    ckpts = tmp_path / "run" / "checkpoints"
    steps = sorted(int(p.name[5:13]) for p in ckpts.glob("step_*.json"))
    assert steps[-2:] == [28, 35] and len(steps) <= 3
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    accs = {int(r["step"]): float(r["test_acc"]) for r in rows if r["test_acc"]}  # test_acc at every checkpoint step
    best = max(sorted(accs), key=lambda s: accs[s])
    assert best in steps, (best, accs, steps)
    # every file of a pruned checkpoint is gone
    assert len(list(ckpts.glob("step_*.safetensors"))) == len(steps) * 2  # weights + buffer
    assert len(list(ckpts.glob("step_*.state.pt"))) == len(steps)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    _tiny_run(tmp_path, steps=7)
    ckpts = tmp_path / "run" / "checkpoints"
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state_path = ckpts / "step_00000007.state.pt"
    with open(state_path, "wb") as f:
        pickle.dump({"step": 7, "x": Exploit()}, f)
    record_path = ckpts / "step_00000007.json"
    record = json.loads(record_path.read_text())
    record["files"]["step_00000007.state.pt"] = ckpt_mod._sha256(state_path)  # checksums pass: only weights_only stands
    record_path.write_text(json.dumps(record))

    with pytest.raises(CorruptCheckpoint, match="refused to load"):
        ckpt_mod.load_training_state(record_path)
    cfg = load_preset("digits-jem", ["train.steps=14", "train.checkpoint_every=7", *TINY])
    with pytest.raises(CorruptCheckpoint, match="refused to load"):
        train(cfg, tmp_path / "run", resume=True, progress=False)
    # a pickle disguised as weights is not a safetensors file
    weights = ckpts / "step_00000007.safetensors"
    with open(weights, "wb") as f:
        pickle.dump(Exploit(), f)
    record["files"]["step_00000007.safetensors"] = ckpt_mod._sha256(weights)
    record_path.write_text(json.dumps(record))
    with pytest.raises(CorruptCheckpoint, match="not a readable safetensors"):
        jemkit.load(record_path)
    assert not marker.exists(), "the pickle's code must never run"


@pytest.mark.parametrize("fault", [lambda: NanAt(9), lambda: LrTimesAt(9, 1e6)], ids=["nan", "lr"])
def test_guard_recovers_from_injected_faults(tmp_path, fault):
    result, _ = _tiny_run(tmp_path, steps=21, extra=["optim.lr=1e-3"], callbacks=[fault()])
    events = (tmp_path / "run" / "events.log").read_text()
    assert "divergence at step" in events and "Recovery 1/3: rolled back to step 7" in events
    assert "lr x0.5" in events and "buffer re-initialized" in events
    model = jemkit.load(tmp_path / "run")
    assert model.record["step"] == 21
    assert all(torch.isfinite(p).all() for p in model.parameters())
    state = ckpt_mod.load_training_state(resolve_checkpoint(tmp_path / "run"))
    assert state["guard"]["recoveries"] >= 1 and state["guard"]["lr_scale"] <= 0.5


def test_guard_stops_after_max_recoveries(tmp_path, capsys, monkeypatch):
    calls, jem_step = [], steps_mod.STEPS["jem"]

    def nan_at_third_call(*args, **kwargs):  # the CLI takes no hooks: poison its step function instead
        calls.append(1)
        out = jem_step(*args, **kwargs)
        return _poisoned(out) if len(calls) == 3 else out

    argv = ["train", "--preset", "digits-jem", "--out", str(tmp_path / "run"), "--quiet"]
    for s in ["train.steps=14", "guard.max_recoveries=0", *TINY]:
        argv += ["--set", s]
    with monkeypatch.context() as m:
        m.setitem(steps_mod.STEPS, "jem", nan_at_third_call)
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "training diverged at step 3" in err and "non-finite" in err and len(err.splitlines()) == 1
    with pytest.raises(DivergenceError, match="training diverged at step 3"):
        train(load_preset("digits-jem", ["train.steps=14", "guard.max_recoveries=0", *TINY]),
              tmp_path / "run2", progress=False, callbacks=[NanAt(3)])


@pytest.mark.parametrize("stats, match", [
    ({"e_data": float("inf")}, "non-finite e_data"),
    ({"e_sample": 1e9}, "energy out of bounds"),
    ({"gap": -5e3}, "energy gap exploded"),
    ({"sgld_grad_norm": float("nan")}, "non-finite sgld_grad_norm"),
    ({"sgld_grad_norm": 1e9}, "gradient norm exploded"),
])
def test_guard_detects(stats, match):
    from jemkit.config import GuardConfig

    out = LossOutput(torch.tensor(1.0), {k: torch.tensor(v) for k, v in stats.items()})
    assert match in check_step(GuardConfig(), out)
    assert check_step(GuardConfig(), LossOutput(torch.tensor(1.0), {"e_data": torch.tensor(-3.0)})) is None


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_checkpoint_and_exits_cleanly(tmp_path, sig):
    run = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(run, 2000), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while latest_step(run) < 7 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert f"{signal.Signals(sig).name} received: stopped after step" in err and "Traceback" not in err
    step = int(err.split("stopped after step ")[1].split(",")[0])
    assert resolve_checkpoint(run).name == f"step_{step:08d}.json"
    assert "stopped by" in (run / "events.log").read_text()


def test_write_errors_are_reported(tmp_path, monkeypatch, capsys):
    def full(tensors, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod, "save_file", full)
    argv = ["train", "--preset", "digits-jem", "--out", str(tmp_path / "run"), "--quiet", "--set", "train.steps=3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "cannot write checkpoint file" in err
    monkeypatch.undo()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["train", "--preset", "digits-jem", "--out", str(blocker / "run"), "--quiet", "--set", "train.steps=3"]) == 2
    assert "Not a directory" in capsys.readouterr().err
    assert blocker.read_text() == "not a directory"


def test_memory_is_flat_over_a_run(tmp_path):
    """No growing lists of tensors and no autograd graphs kept alive: live tensors stay constant."""
    counts = {}

    def count(step, stats):
        if step in (30, 60, 90):
            gc.collect()
            counts[step] = sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))

    cfg = load_preset("digits-jem", ["train.steps=90", *TINY])
    train(cfg, tmp_path / "run", progress=False, on_step=count)
    assert counts[30] == counts[60] == counts[90], counts


def test_guard_detects_accuracy_collapse():
    from jemkit.config import GuardConfig
    from jemkit.training.guard import GuardState, check_accuracy

    cfg, state = GuardConfig(acc_drop=0.3), GuardState()
    for acc in (0.2, 0.6, 0.9, 0.7):  # rising, then a drop smaller than acc_drop
        assert check_accuracy(cfg, state, acc) is None
    assert state.best_acc == 0.9
    assert "training accuracy collapsed: 0.500 after a best of 0.900" in check_accuracy(cfg, state, 0.5)
