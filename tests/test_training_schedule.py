"""The lr schedule: linear warmup then step decay, times the guard's scale; what metrics.csv logs;
saved with every checkpoint and kept by a resume (also from a checkpoint that predates it)."""
import csv
import shutil

import pytest
import torch

from jemkit.checkpoint import load_training_state, resolve_checkpoint
from jemkit.config import OptimConfig, load_preset
from jemkit.training import train
from jemkit.training.guard import GuardState
from jemkit.training.schedule import WarmupStepDecay

TINY = ["model.width=8", "buffer.size=100", "sampler.steps=2", "train.log_every=1", "train.eval_every=100",
        "train.sample_every=100", "train.tensorboard=false", "optim.lr=0.01", "optim.warmup=4",
        "optim.decay_at=[0.5, 0.75]", "optim.decay=0.1", "train.checkpoint_every=5"]


def lrs_of(scheduler: WarmupStepDecay, optimizer, steps: int) -> list[float]:
    """The lr each of ``steps`` training steps runs with (the optimizer's lr before its step)."""
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_then_decay_at_the_fractions_times_the_guard_scale():
    cfg, guard = OptimConfig(lr=0.01, warmup=4, decay_at=[0.5, 0.75], decay=0.1), GuardState()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    lrs = lrs_of(WarmupStepDecay(opt, cfg, 20, guard), opt, 20)
    want = [0.0025, 0.005, 0.0075] + [0.01] * 7 + [0.001] * 5 + [0.0001] * 5  # decays after steps 10 and 15
    assert lrs == pytest.approx(want, rel=1e-12)
    guard.lr_scale = 0.5  # a recovery: rebuilt at the restored step, the scale applies from the next step
    assert lrs_of(WarmupStepDecay(opt, cfg, 20, guard, done_steps=2), opt, 3) == pytest.approx([0.00375, 0.005, 0.005])


def test_metrics_lr_column_is_the_schedule_and_resume_keeps_it(tmp_path):
    ref = tmp_path / "ref"
    train(load_preset("digits-jem", ["train.steps=20", *TINY]), ref, progress=False)
    with open(ref / "metrics.csv", newline="") as f:
        logged = [float(r["lr"]) for r in csv.DictReader(f)]
    assert logged == pytest.approx([0.0025, 0.005, 0.0075] + [0.01] * 7 + [0.001] * 5 + [0.0001] * 5, rel=1e-12)
    state = load_training_state(resolve_checkpoint(ref))
    assert state["scheduler"]["last_epoch"] == 20 and "guard" not in state["scheduler"]

    for legacy in (False, True):  # killed after step 10; legacy: a checkpoint written before the scheduler was saved
        run = tmp_path / f"resumed-{legacy}"
        shutil.copytree(ref, run)
        for p in [*(run / "checkpoints").glob("step_00000015.*"), *(run / "checkpoints").glob("step_00000020.*")]:
            p.unlink()
        if legacy:
            _drop_scheduler_state(run / "checkpoints" / "step_00000010.json")
        train(load_preset("digits-jem", ["train.steps=20", *TINY]), run, progress=False)
        with open(run / "metrics.csv", newline="") as f:
            assert [float(r["lr"]) for r in csv.DictReader(f)] == logged
        final = resolve_checkpoint(run)
        a = torch.load(final.with_name("step_00000020.state.pt"), weights_only=True)
        b = torch.load(resolve_checkpoint(ref).with_name("step_00000020.state.pt"), weights_only=True)
        position = ("last_epoch", "base_lrs", "_last_lr")
        assert [a["scheduler"][k] for k in position] == [b["scheduler"][k] for k in position]
        assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]


def _drop_scheduler_state(record_path):
    """Rewrite a checkpoint's training state as an older jemkit saved it: no scheduler, no initial_lr."""
    import json

    from jemkit import checkpoint as ckpt

    state_path = record_path.with_name(record_path.name.replace(".json", ".state.pt"))
    state = torch.load(state_path, weights_only=True)
    del state["scheduler"]
    for group in state["optimizer"]["param_groups"]:
        del group["initial_lr"]
    torch.save(state, state_path)
    record = json.loads(record_path.read_text())
    record["files"][state_path.name] = ckpt._sha256(state_path)
    record_path.write_text(json.dumps(record))
