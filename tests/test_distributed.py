"""Distributed training with torchrun + DDP on CPU (gloo, 2 processes): the averaged gradient equals the
single-process gradient on the concatenated batch; training writes per-rank buffer shards and resumes
exactly; a different number of processes is refused; settings that cannot be split are refused."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import jemkit
from jemkit.cli import main
from jemkit.config import load_preset
from jemkit.objectives import jem_hybrid
from jemkit.training import distributed
from jemkit.checkpoint import load_buffer, load_training_state, resolve_checkpoint
from jemkit.training.steps import STEPS
from jemkit.training.run import Run

sys.path.insert(0, str(Path(__file__).parent))
from ddp_helper import TINY, global_batch  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
RUN_SETS = ["train.steps=4", "train.checkpoint_every=2", "buffer.size=100", "model.width=8", "sampler.steps=3",
            "train.log_every=2", "train.eval_every=2", "train.sample_every=2"]


def torchrun(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run([*TORCHRUN, *args], env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def train_args(out: Path, sets=RUN_SETS) -> list[str]:
    return ["-m", "jemkit", "train", "--preset", "digits-jem", "--out", str(out), "--quiet",
            *[a for s in sets for a in ("--set", s)]]


@pytest.mark.slow
def test_ddp_gradient_equals_single_process_gradient_on_the_concatenated_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    torchrun([str(Path(__file__).parent / "ddp_helper.py"), str(out)])
    ddp = torch.load(out, weights_only=True)

    run = Run(load_preset("digits-jem", TINY), tmp_path / "single")  # one process, the whole batch of 16
    assert all(torch.equal(v, ddp["weights"][k]) for k, v in run.model.state_dict().items()), "same initial weights"
    x, y, xs = global_batch(run)
    for name, loss in (("ce", lambda: STEPS["ce"](run.energy, x, y).loss),
                       ("jem", lambda: jem_hybrid(run.energy, x, y, xs).loss)):  # JEM with given samples
        run.opt.zero_grad(set_to_none=True)
        loss().backward()
        for k, p in run.model.named_parameters():
            assert p.grad.abs().max() > 0
            torch.testing.assert_close(ddp[name][k], p.grad, rtol=1e-5, atol=1e-7, msg=f"{name}: {k}")
    assert ddp["ranks_agree"], "after full JEM steps (chains on the bare module) every rank holds the same gradients and weights"
    assert ddp["batch_rows"] == [8, 8], "data.batch_size is the global batch: 16 = 2 ranks x 8 rows"
    assert ddp["mean_of_rank"] == 0.5


@pytest.mark.slow
def test_two_processes_train_write_shards_and_resume_exactly(tmp_path, capsys):
    run = tmp_path / "run"
    torchrun(train_args(run))
    ckpts = run / "checkpoints"
    for r in (0, 1):
        assert (ckpts / f"step_00000004.buffer.rank{r}.safetensors").is_file()
        assert (ckpts / f"step_00000004.state.rank{r}.pt").is_file()
        assert load_file(str(ckpts / f"step_00000004.buffer.rank{r}.safetensors"))["x"].shape == (50, 1, 8, 8)
    assert not (ckpts / "step_00000004.buffer.safetensors").exists()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"], "rank 0 alone writes metrics.csv"
    assert len(list(run.glob("events.out.tfevents.*"))) == 1, "rank 0 alone writes TensorBoard events"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_00000002.png", "step_00000004.png"]
    assert jemkit.load(run).record["world_size"] == 2
    assert load_buffer(run).shape == (100, 1, 8, 8), "the shards together make the whole buffer"
    states = [load_training_state(resolve_checkpoint(run), rank=r) for r in (0, 1)]
    assert not torch.equal(states[0]["sample_gen"], states[1]["sample_gen"]), "each rank has its own sampler generator"

    # a run killed after checkpoint 2 holds exactly what checkpoint 2 wrote: rerun the same command
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    for p in (resumed / "checkpoints").glob("step_00000004.*"):
        p.unlink()
    torchrun(train_args(resumed))
    assert "resumed from step_00000002.json" in (resumed / "events.log").read_text()
    names = sorted(p.name for p in ckpts.glob("step_00000004.*safetensors"))
    assert len(names) == 3  # weights + 2 buffer shards
    for name in names:
        a, b = load_file(str(ckpts / name)), load_file(str(resumed / "checkpoints" / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert (resumed / "metrics.csv").read_text().splitlines()[1:] != [], "metrics.csv continues"

    # one process cannot take over a two-process run: one clear line, no file changed
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    argv = ["train", "--preset", "digits-jem", "--out", str(run), "--quiet", "--resume",
            *[a for s in [*RUN_SETS, "train.steps=6"] for a in ("--set", s)]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "written by 2 process(es) and this run has 1" in err and "--nproc_per_node=2" in err
    assert len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("batch, buffer, classes, sample_batch, match", [
    (63, 100, None, 0, "data.batch_size \\(63\\) is global and must be divisible"),
    (64, 99, None, 0, "buffer.size \\(99\\) is split over 2 processes"),
    (64, 30, 10, 0, "must be a multiple of num_classes \\(10\\); got 15 chains per rank"),
    (64, 100, None, 15, "train.sample_batch \\(15\\) is global and must be divisible"),
])
def test_settings_that_cannot_be_split_over_ranks_are_refused(batch, buffer, classes, sample_batch, match):
    with pytest.raises(ValueError, match=match):
        distributed.check_world(distributed.World(rank=0, size=2), batch, buffer, classes, sample_batch)
    distributed.check_world(distributed.World(), batch, buffer, classes, sample_batch)  # one process: anything goes


def test_single_process_helpers_are_no_ops():
    world = distributed.World()
    assert not world.active and world.main
    assert distributed.mean({"a": torch.tensor(2.0)}, world)["a"].item() == 2.0
    assert distributed.ranks_with(True, world) == [0] and distributed.ranks_with(False, world) == []
    assert distributed.total([3.0, 4.0], world) == [3.0, 4.0]
    with pytest.raises(KeyError):
        distributed.on_main(lambda: {}["missing"], world)
