"""Adversarial training of the cross-entropy (``adv.*``, objectives/adversarial.py): the attack stays in its ball and
raises the loss, the mixed cross-entropy is what it says, the config refuses what it cannot do, and a run with it
trains the ce, jem (with the log p(x) schedule too) and energy_oe objectives and resumes bitwise."""
import pytest
import torch
import torch.nn.functional as F

from jemkit.config import ConfigError, load_preset
from jemkit.energy import ClassifierEnergy
from jemkit.objectives import default_step_size, discriminative, jem_hybrid, pgd_linf
from jemkit.training import train
from test_training_levers import TINY, resume_after_interrupt, rows, same_final_weights


def linear_energy(seed: int = 0) -> ClassifierEnergy:
    torch.manual_seed(seed)
    return ClassifierEnergy(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)))


def batch(n: int = 32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g) * 2 - 1, torch.randint(3, (n,), generator=g)


@pytest.mark.parametrize("steps", [1, 3])
def test_pgd_stays_in_the_ball_and_the_data_range_and_raises_the_loss(steps):
    energy, (x, y) = linear_energy(), batch()
    x_adv = pgd_linf(energy, x, y, eps=0.05, steps=steps, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 2 * 0.05 + 1e-6  # ε in [0, 1] pixels is 2ε on [−1, 1] inputs
    assert x_adv.min() >= -1 and x_adv.max() <= 1 and not x_adv.requires_grad
    clean, attacked = F.cross_entropy(energy.logits(x), y), F.cross_entropy(energy.logits(x_adv), y)
    assert attacked > clean + 0.01
    assert all(p.grad is None for p in energy.parameters())  # only the input gets a gradient


def test_pgd_draws_its_start_from_the_generator():
    energy, (x, y) = linear_energy(), batch()
    a, b = (pgd_linf(energy, x, y, eps=0.1, generator=torch.Generator().manual_seed(s)) for s in (0, 0))
    c = pgd_linf(energy, x, y, eps=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert default_step_size(0.1, 1) == pytest.approx(0.125) and default_step_size(0.1, 5) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="eps > 0"):
        pgd_linf(energy, x, y, eps=0.0)


def test_the_cross_entropy_is_the_adversarial_batch_mixed_with_the_clean_one():
    energy, (x, y) = linear_energy(), batch()
    x_adv = pgd_linf(energy, x, y, eps=0.1, generator=torch.Generator().manual_seed(0))
    ce_clean, ce_adv = F.cross_entropy(energy.logits(x), y), F.cross_entropy(energy.logits(x_adv), y)
    assert discriminative(energy, x, y, x_adv=x_adv).loss.item() == pytest.approx(ce_adv.item())
    mixed = discriminative(energy, x, y, x_adv=x_adv, clean_weight=0.25)
    assert mixed.loss.item() == pytest.approx(0.75 * ce_adv.item() + 0.25 * ce_clean.item())
    assert set(mixed.stats) >= {"ce", "acc", "clean_acc"}
    # JEM: the CE term is the adversarial one, log p(x) still sees the clean images
    x_sampled = torch.rand(8, 1, 4, 4) * 2 - 1
    jem = jem_hybrid(energy, x, y, x_sampled, x_adv=x_adv)
    plain = jem_hybrid(energy, x, y, x_sampled)
    assert jem.stats["e_data"] == pytest.approx(plain.stats["e_data"].item())
    assert jem.loss.item() - plain.loss.item() == pytest.approx(ce_adv.item() - ce_clean.item(), abs=1e-5)


@pytest.mark.parametrize("sets, match", [
    (["adv.eps=1.0"], "must be in \\[0, 1\\)"),
    (["adv.eps=0.1", "train.objective=ebm"], "train.objective=ce, jem or energy_oe"),
    (["adv.eps=0.1", "adv.steps=0"], "adv.steps must be >= 1"),
    (["adv.eps=0.1", "adv.clean_weight=1.0"], "adv.clean_weight must be in"),
    (["adv.eps=0.1", "adv.step_size=-0.1"], "adv.step_size must be >= 0"),
])
def test_bad_adversarial_settings_are_refused(sets, match):
    with pytest.raises(ConfigError, match=match):
        load_preset("digits-jem", sets)


@pytest.mark.parametrize("preset, extra", [("digits-baseline", []), ("digits-jem", ["train.px_every=2"]),
                                           ("digits-jem", ["train.objective=energy_oe"])])
def test_adversarial_runs_log_both_accuracies(tmp_path, preset, extra):
    sets = [*TINY, "train.steps=6", "train.log_every=2", "train.eval_every=6", "adv.eps=0.1", "adv.steps=2",
            "adv.clean_weight=0.5", *extra]
    train(load_preset(preset, sets), tmp_path / "run", progress=False)
    r = rows(tmp_path / "run")
    assert [row["step"] for row in r] == ["2", "4", "6"]
    assert all(0 <= float(row["acc"]) <= 1 and 0 <= float(row["clean_acc"]) <= 1 for row in r)


def test_adversarial_jem_resumes_bitwise(tmp_path):
    sets = [*TINY, "train.steps=10", "train.checkpoint_every=5", "train.log_every=5", "train.eval_every=5", "adv.eps=0.1"]
    train(load_preset("digits-jem", sets), tmp_path / "ref", progress=False)
    resume_after_interrupt(load_preset("digits-jem", sets), tmp_path / "run", at=8)
    assert same_final_weights(tmp_path / "ref", tmp_path / "run")
