"""The cheaper-JEM levers (train.sample_batch, px_start, px_every, bf16) and the evaluation columns that time to
quality reads (test_nll, test_ece, test_agreement): what each does, what the config refuses, and exact resume."""
import csv

import pytest
import torch
from safetensors.torch import load_file

from jemkit.checkpoint import resolve_checkpoint
from jemkit.config import ConfigError, TrainConfig, load_preset
from jemkit.energy import ClassifierEnergy
from jemkit.sampling import ReplayBuffer
from jemkit.training import train
from jemkit.training.steps import Chains
from test_energy_oe_training import StopAt

TINY = ["model.width=8", "optim.warmup=0", "optim.lr=3e-3", "buffer.size=100", "sampler.steps=2", "data.batch_size=32",
        "train.tensorboard=false", "train.sample_every=1000"]


def rows(run) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def resume_after_interrupt(cfg, run, at: int) -> None:
    """Train ``cfg`` into ``run``, killed after step ``at`` (past its last checkpoint), then resumed to the end."""
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, progress=False, callbacks=[StopAt(at)])
    train(cfg, run, progress=False)


def same_final_weights(a, b) -> bool:
    """Whether runs ``a`` and ``b`` end with bitwise-equal weights."""
    wa = load_file(str(resolve_checkpoint(a).with_suffix(".safetensors")))
    wb = load_file(str(resolve_checkpoint(b).with_suffix(".safetensors")))
    return all(torch.equal(wa[k], wb[k]) for k in wa)


class CountChains:
    """A sampler that records how many chains each call advances (and moves nothing)."""

    def __init__(self):
        self.sizes = []

    def __call__(self, energy, x, y=None, generator=None, callback=None):
        self.sizes.append(x.shape[0])
        return x.clone()


def test_sample_batch_advances_fewer_chains_than_the_data_batch():
    energy = ClassifierEnergy(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)))
    sampler, x = CountChains(), torch.zeros(8, 1, 2, 2)
    buffer = ReplayBuffer(20, (1, 2, 2), reinit=0.0)
    for sample_batch, expected in ((0, 8), (3, 3), (8, 8), (20, 8)):
        out = Chains(energy, sampler, buffer, TrainConfig(sample_batch=sample_batch), None).advance(x)
        assert sampler.sizes[-1] == expected and out.shape == (expected, 1, 2, 2)
    # CD-k starts from the first rows of the data batch; the p(x|y) chains follow every label of the batch
    data = Chains(energy, sampler, None, TrainConfig(sample_batch=3, chain_init="data"), None).advance(torch.arange(8.0).view(8, 1, 1, 1))
    assert data.flatten().tolist() == [0.0, 1.0, 2.0]
    conditional = ReplayBuffer(30, (1, 2, 2), reinit=0.0, num_classes=3)
    Chains(energy, sampler, conditional, TrainConfig(sample_batch=3), None).advance(x, torch.zeros(8, dtype=torch.long))
    assert sampler.sizes[-1] == 8


@pytest.mark.parametrize("sets, match", [
    (["train.px_every=0"], "train.px_every must be > 0"),
    (["train.objective=ce", "train.px_every=2"], "set train.objective=jem"),
    (["train.objective=energy_oe", "train.sample_batch=8"], "set train.objective=jem"),
    (["train.px_start=200", "train.steps=200"], "must be below train.steps"),
    (["train.sample_batch=-1"], "train.sample_batch must be >= 0"),
    (["train.objective=tilt", "train.sample_batch=1"], "must be 0 or >= 2"),
    (["train.objective=ebm", "data.outliers=generated:shapes"], "data.outliers is read by"),
])
def test_bad_lever_settings_are_refused(sets, match):
    with pytest.raises(ConfigError, match=match):
        load_preset("digits-jem", sets)
    with pytest.raises(ConfigError, match="score models have no classes"):
        load_preset("toy-dsm", ["train.eval_samples=2"])


def test_px_schedule_runs_chains_only_where_due_and_logs_quality_columns(tmp_path):
    cfg = load_preset("digits-jem", [*TINY, "train.steps=12", "train.px_start=4", "train.px_every=3", "train.log_every=1",
                                     "train.eval_every=6", "train.eval_samples=2", "train.sample_batch=8"])
    train(cfg, tmp_path / "run", progress=False)
    r = {int(row["step"]): row for row in rows(tmp_path / "run")}
    with_chains = [s for s in r if r[s]["e_sample"] != ""]
    assert with_chains == [4, 7, 10]  # from px_start, every px_every-th step
    assert all(r[s]["ce"] != "" for s in r)  # cross-entropy on every step
    for s in (6, 12):
        assert 0 <= float(r[s]["test_ece"]) <= 1 and float(r[s]["test_nll"]) > 0
        assert float(r[s]["test_agreement"]) in {i / 20 for i in range(21)}  # 2 chains for each of the 10 classes
    assert r[5]["test_acc"] == r[5]["test_ece"] == ""  # evaluations only where due


def test_levers_resume_bitwise(tmp_path):
    sets = [*TINY, "train.steps=14", "train.px_start=3", "train.px_every=2", "train.sample_batch=8", "train.bf16=true",
            "train.checkpoint_every=7", "train.log_every=7", "train.eval_every=7", "train.eval_samples=1"]
    train(load_preset("digits-jem", sets), tmp_path / "ref", progress=False)
    resume_after_interrupt(load_preset("digits-jem", sets), tmp_path / "run", at=11)
    assert same_final_weights(tmp_path / "ref", tmp_path / "run")
    keys = ("step", "loss", "e_data", "e_sample", "test_acc", "test_ece", "test_agreement")
    assert [[row[k] for k in keys] for row in rows(tmp_path / "ref")] == [[row[k] for k in keys] for row in rows(tmp_path / "run")]


def test_bf16_step_trains_float32_weights(tmp_path):
    cfg = load_preset("digits-jem", [*TINY, "train.steps=4", "train.bf16=true", "train.log_every=2", "train.eval_every=4"])
    result = train(cfg, tmp_path / "run", progress=False)
    weights = load_file(str(result.checkpoint))
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())
    assert all(row["loss"] != "" and float(row["loss"]) == float(row["loss"]) for row in rows(tmp_path / "run"))


def test_tilt_objective_trains_on_exact_gaussian_draws_and_resumes_bitwise(tmp_path):
    """train.objective=tilt: no buffer and no chains, ``sample_batch`` draws of the training images' Gaussian per
    step (their weights' ESS logged), the record says ``tilt`` (evaluation refits the base), exact resume."""
    sets = [*TINY, "train.objective=tilt", "train.steps=8", "train.sample_batch=16", "train.energy_l2=0.1",
            "train.checkpoint_every=4", "train.log_every=2", "train.eval_every=4", "train.px_every=2"]
    result = train(load_preset("digits-jem", sets), tmp_path / "ref", progress=False)
    r = {int(row["step"]): row for row in rows(tmp_path / "ref")}
    assert [s for s in r if r[s]["ess"] != ""] == [2, 4, 6, 8]  # the log p(x) term on every 2nd step
    assert all(1 <= float(r[s]["ess"]) <= 16 for s in (2, 4, 6, 8))
    assert not list((tmp_path / "ref" / "checkpoints").glob("*buffer*"))
    import jemkit
    assert jemkit.load(tmp_path / "ref").record["objective"] == "tilt" and result.checkpoint.is_file()
    resume_after_interrupt(load_preset("digits-jem", sets), tmp_path / "run", at=6)
    assert same_final_weights(tmp_path / "ref", tmp_path / "run")


def test_tilt_takes_the_outlier_term_and_resumes_bitwise(tmp_path):
    """train.objective=tilt with data.outliers: the hinges of oe.* on the tilt's energy (logged), drawn by the
    checkpointed generator, so a resumed run ends with the same weights."""
    sets = [*TINY, "train.objective=tilt", "train.steps=6", "train.sample_batch=16", "train.checkpoint_every=3",
            "train.log_every=3", "train.eval_every=3", "data.outliers=generated:shapes+spectral",
            "oe.margins=fixed", "oe.m_in=-5", "oe.m_out=5", "oe.weight=1"]
    train(load_preset("digits-jem", sets), tmp_path / "ref", progress=False)
    logged = rows(tmp_path / "ref")
    assert all(row["hinge_out"] != "" and float(row["hinge_out"]) > 0 and row["ess"] != "" for row in logged)
    resume_after_interrupt(load_preset("digits-jem", sets), tmp_path / "run", at=5)
    assert same_final_weights(tmp_path / "ref", tmp_path / "run")
    train(load_preset("digits-jem", [s for s in sets if not s.startswith(("data.outliers", "oe."))]), tmp_path / "plain",
          progress=False)
    assert not same_final_weights(tmp_path / "ref", tmp_path / "plain")
