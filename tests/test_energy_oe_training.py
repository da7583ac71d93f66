"""train.objective=energy_oe (Liu et al. 2020 §3.2) as a training run: outliers from data.outliers or, with
none, the replay buffer's SGLD samples (jemkit's hybrid); energies separate, metrics.csv logs the hinges,
bad configs give one line, the guard rolls it back, and a resumed run ends bitwise equal."""
import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import jemkit
from jemkit.checkpoint import resolve_checkpoint
from jemkit.cli import main
from jemkit.config import EnergyOEConfig, TrainConfig, load_preset
from jemkit.data import load_dataset, load_ood_set
from jemkit.data.outliers import generated_outliers, natural_patches, procedural_shapes
from jemkit.energy import ClassifierEnergy
from jemkit.objectives import LossOutput, margins_from_energies
from jemkit.sampling import ReplayBuffer
from jemkit.training import Callback, train
from jemkit.training.steps import energy_oe_step

# margins around a fresh width-8 CNN's energies (≈ −log 10 ≈ −2.3 for near-zero logits): both hinges start active
TINY = ["model.width=8", "optim.warmup=0", "optim.lr=3e-3", "oe.m_in=-4", "oe.m_out=-1", "oe.weight=1.0",
        "train.log_every=5", "train.eval_every=30", "train.sample_every=30"]


def write_noise(path, n=200, size=8, seed=0):
    """An outlier set: uniform-noise uint8 images (N, H, W) in an .npz file."""
    np.savez(path, x=np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8))
    return f"npz:{path}"


def rows(run) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def energy_gap(model, x_in, x_out) -> float:
    """mean E(x_out) − mean E(x_in): how far above the data the model puts outliers."""
    energy = ClassifierEnergy(model)
    with torch.no_grad():
        return (energy(x_out).mean() - energy(x_in).mean()).item()


def test_outliers_are_pushed_above_the_data(tmp_path):
    spec = write_noise(tmp_path / "noise.npz")
    base = ["train.steps=30", "train.checkpoint_every=0", *TINY]
    train(load_preset("digits-baseline", [*base, "train.objective=energy_oe", f"data.outliers={spec}"]),
          tmp_path / "oe", progress=False)
    train(load_preset("digits-baseline", [*base, "train.objective=ce"]), tmp_path / "ce", progress=False)
    x_in = load_dataset("digits").x_test
    x_out = torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1  # fresh noise, never trained on
    start = energy_gap(jemkit.load(tmp_path / "oe" / "checkpoints" / "step_00000000.json"), x_in, x_out)
    oe, ce = energy_gap(jemkit.load(tmp_path / "oe"), x_in, x_out), energy_gap(jemkit.load(tmp_path / "ce"), x_in, x_out)
    assert oe > start + 1.0 and oe > ce + 1.0, (start, oe, ce)
    first, last = rows(tmp_path / "oe")[0], rows(tmp_path / "oe")[-1]
    assert float(last["hinge_in"]) < float(first["hinge_in"]) / 2, (first, last)
    assert float(last["e_out"]) - float(last["e_in"]) > float(first["e_out"]) - float(first["e_in"]) + 1.0


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A briefly trained cross-entropy digits classifier (test accuracy ~0.55), the run directory."""
    run = tmp_path_factory.mktemp("pretrained") / "run"
    train(load_preset("digits-baseline", ["train.steps=60", "model.width=8", "optim.warmup=0", "optim.lr=3e-3",
                                          "train.log_every=30", "train.eval_every=60"]), run, progress=False)
    return run


def finetune(pretrained, out, sets) -> int:
    argv = ["finetune", str(pretrained), "--data", "digits", "--out", str(out), "--quiet"]
    common = ["optim.lr=1e-3", "optim.warmup=0", "train.log_every=10", "train.eval_every=60", "train.checkpoint_every=0"]
    return main(argv + [a for s in common + sets for a in ("--set", s)])


def measure(model, x_out):
    """(test accuracy, FPR95 and AUROC of the energy score −E with the test set as positives, mean E(test))."""
    from jemkit.evaluation.ood import auroc, fpr_at_tpr

    x_in, y = load_dataset("digits").x_test, load_dataset("digits").y_test
    energy = ClassifierEnergy(model)
    with torch.no_grad():
        acc = (model(x_in).argmax(1) == y).float().mean().item()
        s_in, s_out = -energy(x_in), -energy(x_out)
    return acc, fpr_at_tpr(s_in, s_out), auroc(s_in, s_out), -s_in.mean().item()


def held_out_ood(n=500):
    """Uniform noise and constant images, never trained on: (2n, 1, 8, 8) in [−1, 1]."""
    g = torch.Generator().manual_seed(5)
    noise, level = torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, torch.rand(n, 1, 1, 1, generator=g) * 2 - 1
    return torch.cat([noise, level.expand(-1, 1, 8, 8)])


def test_energy_oe_finetuning_of_a_pretrained_classifier_lowers_fpr95(pretrained, tmp_path, capsys):
    """Item 5 of issue 15 end to end: a trained classifier, `jemkit finetune` with train.objective=energy_oe and
    margins set around its own energies; FPR95 of the energy score on fresh noise falls, accuracy holds."""
    x_out = held_out_ood()[:500]
    acc_before, fpr_before, _, e_in = measure(jemkit.load(pretrained), x_out)
    e_out = ClassifierEnergy(jemkit.load(pretrained))(x_out).mean().item()
    sets = ["train.objective=energy_oe", f"data.outliers={write_noise(tmp_path / 'noise.npz')}", f"oe.m_in={e_in - 1:.3f}",
            f"oe.m_out={e_out + 1:.3f}", "oe.weight=1.0", "train.steps=30"]
    assert finetune(pretrained, tmp_path / "ft", sets) == 0, capsys.readouterr().err
    acc_after, fpr_after, _, _ = measure(jemkit.load(tmp_path / "ft"), x_out)
    assert fpr_after < fpr_before / 2 and acc_after >= acc_before - 0.05, (fpr_before, fpr_after, acc_before, acc_after)


def test_the_hybrid_finetuning_with_no_outliers_beats_cross_entropy_on_ood(pretrained, tmp_path, capsys):
    """The SGLD samples stand in for outliers: fine-tuned the same number of steps, the hybrid separates unseen
    noise and constant images better than cross-entropy alone does, with accuracy kept."""
    x_out = held_out_ood()
    acc_before, _, auroc_before, e_in = measure(jemkit.load(pretrained), x_out)
    sets = ["train.steps=60", "buffer.size=500"]
    hybrid = ["train.objective=energy_oe", f"oe.m_in={e_in - 1:.3f}", f"oe.m_out={e_in + 2:.3f}", "oe.weight=0.1"]
    assert finetune(pretrained, tmp_path / "hybrid", sets + hybrid) == 0, capsys.readouterr().err
    assert finetune(pretrained, tmp_path / "ce", sets + ["train.objective=ce"]) == 0, capsys.readouterr().err
    acc, _, auroc, _ = measure(jemkit.load(tmp_path / "hybrid"), x_out)
    _, _, auroc_ce, _ = measure(jemkit.load(tmp_path / "ce"), x_out)
    assert auroc > max(auroc_before, auroc_ce) + 0.03 and acc >= acc_before - 0.05, (auroc_before, auroc_ce, auroc, acc)


def test_the_step_draws_its_outliers_from_the_set():
    torch.manual_seed(0)
    energy = ClassifierEnergy(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)))
    x, y = torch.randn(8, 1, 4, 4), torch.randint(3, (8,))
    one = torch.randn(1, 1, 4, 4)
    out = energy_oe_step(energy, x, y, oe=EnergyOEConfig(), outliers=one.expand(5, -1, -1, -1), sampler=None,
                         buffer=None, train=TrainConfig(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.stats["e_out"], energy(one).detach()[0])
    assert "sgld_grad_norm" not in out.stats  # no chains ran


def test_the_hybrid_takes_the_chains_samples_as_outliers():
    torch.manual_seed(0)
    energy = ClassifierEnergy(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)))
    x, y = torch.randn(8, 1, 4, 4), torch.randint(3, (8,))
    buffer = ReplayBuffer(20, (1, 4, 4), generator=torch.Generator().manual_seed(1))

    def sampler(energy, x0, y=None, generator=None, callback=None):  # every chain ends at the same image
        callback({"grad": torch.ones_like(x0)})
        return torch.full_like(x0, 0.5)

    out = energy_oe_step(energy, x, y, oe=EnergyOEConfig(), outliers=None, sampler=sampler, buffer=buffer,
                         train=TrainConfig(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.stats["e_out"], energy(torch.full((1, 1, 4, 4), 0.5)).detach()[0])
    assert (buffer.x == 0.5).all(dim=(1, 2, 3)).sum() >= 1  # the samples went back to the buffer
    assert out.stats["sgld_grad_norm"].item() == pytest.approx(4.0)  # ‖1‖ over 16 pixels


def test_oe_chains_takes_the_outliers_and_the_samples():
    torch.manual_seed(0)
    energy = ClassifierEnergy(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)))
    x, y = torch.randn(8, 1, 4, 4), torch.randint(3, (8,))
    buffer = ReplayBuffer(20, (1, 4, 4), generator=torch.Generator().manual_seed(1))
    one = torch.randn(1, 1, 4, 4)
    sampler = lambda energy, x0, y=None, generator=None, callback=None: torch.full_like(x0, 0.5)
    out = energy_oe_step(energy, x, y, oe=EnergyOEConfig(chains=True), outliers=one.expand(5, -1, -1, -1),
                         sampler=sampler, buffer=buffer, train=TrainConfig(), generator=torch.Generator().manual_seed(0))
    both = (energy(one) + energy(torch.full((1, 1, 4, 4), 0.5))).detach()[0] / 2  # 8 outliers and 8 samples
    torch.testing.assert_close(out.stats["e_out"], both)
    assert (buffer.x == 0.5).all(dim=(1, 2, 3)).sum() >= 1


def test_hybrid_without_outliers_trains_and_logs_e_out(tmp_path):
    run = tmp_path / "run"
    cfg = load_preset("digits-jem", [*TINY, "train.objective=energy_oe", "train.steps=2", "train.log_every=1", "sampler.steps=2",
                                     "buffer.size=100"])
    train(cfg, run, progress=False)
    logged = rows(run)
    assert [r["step"] for r in logged] == ["1", "2"]
    assert all(r["e_out"] and r["hinge_out"] and r["sgld_grad_norm"] and r["buffer_std"] for r in logged)
    record = resolve_checkpoint(run)
    assert record.with_name(record.name.replace(".json", ".buffer.safetensors")).is_file()


def write_bright(path, n=200, size=8, seed=0):
    """An outlier set of bright, nearly flat images (uint8 200..255): nothing JEM's chains from noise visit."""
    np.savez(path, x=np.random.default_rng(seed).integers(200, 256, (n, size, size), dtype=np.uint8))
    return f"npz:{path}"


def test_jem_with_outliers_adds_the_outlier_term(tmp_path):
    spec = write_bright(tmp_path / "bright.npz")
    base = ["train.steps=40", "train.checkpoint_every=0", *TINY]
    train(load_preset("digits-jem", [*base, f"data.outliers={spec}", "oe.margins=auto"]), tmp_path / "jem_oe", progress=False)
    train(load_preset("digits-jem", base), tmp_path / "jem", progress=False)
    assert "oe.margins=auto: m_in=" in (tmp_path / "jem_oe" / "events.log").read_text()
    last = rows(tmp_path / "jem_oe")[-1]
    assert all(last[k] for k in ("e_data", "e_sample", "e_in", "e_out", "hinge_in", "hinge_out")), last  # both terms
    assert not rows(tmp_path / "jem")[-1].get("e_out")
    x_in = load_dataset("digits").x_test
    x_out = 0.8 + 0.2 * torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(5))  # fresh bright images
    with_oe, without = (energy_gap(jemkit.load(tmp_path / r), x_in, x_out) for r in ("jem_oe", "jem"))
    assert with_oe > without + 1.0, (with_oe, without)


def test_generated_outliers():
    x = generated_outliers("patches+shapes", (1, 8, 8), n=41, seed=3)
    assert x.shape == (41, 1, 8, 8) and x.dtype == torch.uint8
    assert torch.equal(x, generated_outliers("patches+shapes", (1, 8, 8), n=41, seed=3))  # reproducible
    patches, shapes = natural_patches(21, (1, 8, 8), seed=3), procedural_shapes(20, (1, 8, 8), seed=4)
    assert sorted(map(bytes, x.numpy())) == sorted(map(bytes, torch.cat([patches, shapes]).numpy()))  # 21 + 20, shuffled
    rgb = generated_outliers("shapes", (3, 12, 12), n=6)
    assert rgb.shape == (6, 3, 12, 12) and torch.equal(rgb[:, 0], rgb[:, 2])  # gray shapes in every channel
    strokes = procedural_shapes(40, (1, 28, 28))[::2].float()  # even indices: strokes on a dark background
    assert (strokes.flatten(1).median(1).values < 60).all() and (strokes.flatten(1).amax(1) > 100).all()
    with pytest.raises(ValueError, match="square images"):
        generated_outliers("shapes", (1, 8, 12))
    with pytest.raises(ValueError, match="repeat"):
        generated_outliers("shapes+shapes", (1, 8, 8))


def test_outliers_of_the_original_shape_are_padded_like_the_data(tmp_path):
    spec = write_noise(tmp_path / "noise.npz")
    cfg = load_preset("digits-baseline", ["train.objective=energy_oe", f"data.outliers={spec}", "data.shape=3x12x12",
                                          "train.steps=2", *TINY])
    train(cfg, tmp_path / "run", progress=False)
    assert rows(tmp_path / "run")[-1]["e_out"]


@pytest.mark.parametrize("sets, message", [
    (["train.chain_init=data"], "energy_oe without data.outliers takes the replay buffer's SGLD samples"),
    (["oe.m_in=-1", "oe.m_out=-4"], "oe.m_in must be below oe.m_out"),
    (["data.outliers=BIG"], "has images 1x16x16, the model takes 1x8x8"),
    (["data.outliers=folder:x"], "data.outliers must be npz:FILE, imagefolder:DIR or generated:KINDS"),
    (["data.outliers=generated:leaves"], "unknown generated outlier kind 'leaves'"),
    (["oe.chains=true"], "oe.chains=true adds the SGLD samples to data.outliers"),
    (["train.objective=ce", "data.outliers=BIG"], "data.outliers is read by train.objective=energy_oe, jem or tilt only"),
    (["data.labels_per_class=5"], "energy_oe trains on labelled images only"),
    (["oe.margins=auto"], "oe.margins=auto measures the model's energies on data.outliers"),
    (["oe.margins=auto", "data.outliers=BIG", "oe.margin_gap=0"], "oe.margin_gap must be > 0"),
    (["oe.margins=median"], "oe.margins: unknown value 'median'"),
])
def test_bad_configs_give_one_line(tmp_path, capsys, sets, message):
    big = write_noise(tmp_path / "big.npz", size=16)
    argv = ["train", "--preset", "digits-jem", "--out", str(tmp_path / "run"), "--quiet"]
    for s in ["train.objective=energy_oe", "train.steps=2", *TINY, *sets]:
        argv += ["--set", s.replace("BIG", big)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("jemkit: error:") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run" / "checkpoints").exists()


class PoisonAt(Callback):
    """A NaN loss at step ``at``, once: the guard reads energy_oe's loss (its energies have no bounds there)."""

    def __init__(self, at: int):
        self.at, self.fired = at, False

    def on_loss(self, step, out):
        if step != self.at or self.fired:
            return out
        self.fired = True
        return LossOutput(out.loss * float("nan"), out.stats)


class StopAt(Callback):
    """Stands in for a kill: the run dies after step ``at``, past its last checkpoint."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, step, stats):
        if step == self.at:
            raise KeyboardInterrupt


def _oe_config(spec: str, steps: int = 14, sets: tuple = ()):
    return load_preset("digits-baseline", ["train.objective=energy_oe", f"data.outliers={spec}", f"train.steps={steps}",
                                           *TINY, "train.checkpoint_every=7", "train.log_every=7", *sets])  # rows at checkpoints


def test_guard_rolls_energy_oe_back(tmp_path):
    spec = write_noise(tmp_path / "noise.npz")
    train(_oe_config(spec), tmp_path / "run", progress=False, callbacks=[PoisonAt(9)])
    events = (tmp_path / "run" / "events.log").read_text()
    assert "divergence at step 9: non-finite loss" in events and "rolled back to step 7" in events
    assert jemkit.load(tmp_path / "run").record["step"] == 14


def test_resume_with_outliers_is_bitwise(tmp_path):
    spec = write_noise(tmp_path / "noise.npz")
    train(_oe_config(spec), tmp_path / "ref", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(_oe_config(spec), tmp_path / "run", progress=False, callbacks=[StopAt(11)])
    train(_oe_config(spec), tmp_path / "run", progress=False)
    assert "resumed from step_00000007.json" in (tmp_path / "run" / "events.log").read_text()
    a = load_file(str(resolve_checkpoint(tmp_path / "ref").with_suffix(".safetensors")))
    b = load_file(str(resolve_checkpoint(tmp_path / "run").with_suffix(".safetensors")))
    assert all(torch.equal(a[k], b[k]) for k in a)
    stats = ("step", "loss", "e_in", "e_out", "hinge_in", "hinge_out")
    assert [[r[k] for k in stats] for r in rows(tmp_path / "ref")] == [[r[k] for k in stats] for r in rows(tmp_path / "run")]
    assert [r["step"] for r in rows(tmp_path / "run")] == ["7", "14"]


def test_auto_margins_come_from_the_step_0_model_and_survive_a_resume(tmp_path):
    spec = write_noise(tmp_path / "noise.npz")
    sets = ["oe.margins=auto", "oe.m_in=0", "oe.m_out=0", "oe.margin_gap=0.5"]  # the fixed values are ignored
    train(_oe_config(spec, sets=sets), tmp_path / "ref", progress=False)
    events = (tmp_path / "ref" / "events.log").read_text()
    m_in, m_out = (float(events.split(f"{k}=")[1].split(",")[0].split(" ")[0]) for k in ("m_in", "m_out"))
    start = jemkit.load(tmp_path / "ref" / "checkpoints" / "step_00000000.json")
    with torch.no_grad():
        e_in = ClassifierEnergy(start)(load_dataset("digits").x_train[:5000])
        e_out = ClassifierEnergy(start)(load_ood_set(spec, like=load_dataset("digits")))
    expected = margins_from_energies(e_in, e_out, 0.5)
    assert (m_in, m_out) == pytest.approx(expected, abs=1e-4) and m_out - m_in >= 0.5 - 1e-6
    first = rows(tmp_path / "ref")[0]  # the hinges at the first steps are the measured margins' (both active)
    assert float(first["hinge_in"]) > 0 and float(first["hinge_out"]) > 0
    with pytest.raises(KeyboardInterrupt):
        train(_oe_config(spec, sets=sets), tmp_path / "run", progress=False, callbacks=[StopAt(11)])
    train(_oe_config(spec, sets=sets), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "events.log").read_text().count("oe.margins=auto") == 1  # measured once, then restored
    a = load_file(str(resolve_checkpoint(tmp_path / "ref").with_suffix(".safetensors")))
    b = load_file(str(resolve_checkpoint(tmp_path / "run").with_suffix(".safetensors")))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_margins_from_energies_keep_the_least_gap():
    assert margins_from_energies(torch.tensor([-6.0, -5.0, -4.0]), torch.tensor([-1.0, 0.0, 1.0]), 2.0) == (-5.0, 0.0)
    assert margins_from_energies(torch.tensor([-3.0]), torch.tensor([-2.0]), 2.0) == (-3.5, -1.5)  # widened about −2.5
    assert margins_from_energies(torch.tensor([1.0]), torch.tensor([-1.0]), 1.0) == (-0.5, 0.5)  # outliers below: centred
