"""The robustness suite: PGD curves on a tiny trained digits model, and gradients through purification."""
import copy
import sys

import pytest
import torch
import torch.nn.functional as F

from jemkit.energy import ClassifierEnergy
from jemkit.model import predict_logits
from jemkit.evaluation.robustness import (
    NormalizedLogits, PixelSpace, RobustnessOptions, PurifiedClassifier, correct, eps_key, is_monotone, purify_bpda,
    purify_full, robust_curve, suite_robustness, zero_gradient_fraction,
)

from conftest import DEVICES, make_ctx

pytest.importorskip("torchattacks")


@pytest.fixture(scope="module")
def model(tiny_digits_ce):
    """A tiny CE classifier: the curves need mostly-correct clean examples, which the shared tiny JEM does not give."""
    return tiny_digits_ce


@pytest.fixture(scope="module")
def data(digits):  # module scope: the module-scoped quick_result needs it
    return digits


@pytest.fixture(scope="module")
def quick_result(model, data, tmp_path_factory):
    return suite_robustness(make_ctx(model, data, tmp_path_factory.mktemp("quick")))["robustness"]


def test_quick_run_has_every_curve_and_sane_values(quick_result):
    r = quick_result
    assert r["n_bare"] == 32 and r["n_defended"] == 16
    for norm in ("linf", "l2"):
        assert r[norm]["eps"][0] == 0.0 and len(r[norm]["eps"]) == 3
        for curve in ("bare", "bpda", "full"):
            acc = r[norm][curve]
            assert len(acc) == len(r[norm]["eps"]) and all(0 <= a <= 1 for a in acc)
            assert all(b <= a for a, b in zip(acc, acc[1:])), (norm, curve, acc)  # non-increasing
            assert r[norm]["monotone"][curve] is True
            assert r[norm]["eps_0"][curve] == acc[0]  # the scalar copies of the curve points
        assert r[norm]["bare"][0] == r["clean_accuracy"]
        assert r[norm]["bpda"][0] == r[norm]["full"][0] == r["defended_clean_accuracy"]
    assert r["clean_accuracy"] > 0.5 and r["monotone"] is True and r["eps0_is_clean"] is True
    assert r["defense"]["sgld_step_size"] == 1.0 and r["defense"]["sgld_noise"] == 0.01  # the checkpoint's
    assert r["defense"]["sgld_grad_clip"] == 0.0 and r["defense"]["sgld_clamp"] is False
    assert r["zero_gradient_fraction"] == {"bare": 0.0, "bpda": 0.0, "full": 0.0}


@pytest.mark.parametrize("device", [d for d in DEVICES if d != "cpu"])  # CPU: the run above
def test_runs_on_the_accelerator(model, data, tmp_path, device):
    rng = torch.cuda.get_rng_state_all()
    r = suite_robustness(make_ctx(copy.deepcopy(model).to(device), data.to(device), tmp_path))["robustness"]
    assert r["monotone"] and r["eps0_is_clean"] and len(r["linf"]["full"]) == 3
    assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), rng))


class Flagged(torch.nn.Module):
    """Judge on rows (index, flag): predicts the label 0 unless the flag is set."""

    def forward(self, x):
        return torch.stack([1 - x[:, 1], x[:, 1]], 1)


def test_robust_means_surviving_every_restart_at_every_smaller_eps():
    broken = {(1.0, 0): {0}, (1.0, 1): {1}, (2.0, 0): {3}, (2.0, 1): set()}  # (ε, restart) → indices; not nested in ε
    calls = []

    def attack(e):
        def run(x, y):
            restart = sum(c == e for c in calls)
            calls.append(e)
            x = x.clone()
            x[:, 1] += torch.tensor([float(int(i) in broken[e, restart]) for i in x[:, 0]])
            return x
        return run

    x = torch.stack([torch.arange(6.0), torch.tensor([0.0] * 5 + [1.0])], 1)  # example 5 is wrong from the start
    y = torch.zeros(6, dtype=torch.long)
    clean = correct(Flagged(), x, y, 100)
    acc = robust_curve(attack, Flagged(), x, y, clean, (0.0, 1.0, 2.0), restarts=2, batch_size=100, step=lambda: None)
    assert acc == pytest.approx([5 / 6, 3 / 6, 2 / 6])  # broken: {5} → ∪{0, 1} → ∪{3}


def test_eps0_is_clean_accuracy_and_a_big_eps_breaks_the_bare_classifier(model, data, tmp_path):
    options = {"n_bare": 10_000, "defense_gradients": (), "linf_eps": [0.5], "l2_eps": [0.0, 4.0]}
    r = suite_robustness(make_ctx(model, data, tmp_path), options)["robustness"]
    clean = (predict_logits(model, data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert r["n_bare"] == len(data.y_test) and r["n_defended"] == 0
    assert r["linf"]["eps"] == [0.0, 0.5]  # 0 is always added
    for norm in ("linf", "l2"):
        assert set(r[norm]) >= {"bare"} and "bpda" not in r[norm]
        assert r[norm]["bare"][0] == pytest.approx(clean, abs=1e-9)
        assert r[norm]["bare"][-1] <= 0.05, r[norm]["bare"]


def test_reproducible_prefixed_and_free_of_side_effects(model, data, tmp_path, quick_result):
    model.train()
    rng = torch.get_rng_state()
    try:
        again = suite_robustness(make_ctx(model, data, tmp_path, label="baseline"))["robustness"]
        assert model.training  # mode restored
    finally:
        model.eval()
    assert torch.equal(torch.get_rng_state(), rng)  # torchattacks' global-RNG use is forked away
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert again == quick_result
    assert (tmp_path / "baseline_robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "robustness.png").exists()


def test_curve_flags_and_keys():
    assert is_monotone([0.9, 0.9, 0.5, 0.0]) and not is_monotone([0.9, 0.5, 0.6])
    assert (eps_key(8 / 255), eps_key(0.1), eps_key(0.0), eps_key(2.0)) == ("eps_8/255", "eps_0.1", "eps_0", "eps_2")


def test_a_larger_eps_breaks_more_examples(model, data, tmp_path):
    options = {"n_bare": 64, "defense_gradients": (), "linf_eps": [0.02, 0.3]}
    r = suite_robustness(make_ctx(model, data, tmp_path), options)["robustness"]["linf"]["bare"]  # ε = 0, 0.02, 0.3
    assert r[1] > 0.5 and r[1] > r[2] + 0.4 and r[2] <= 0.05, r


def test_purification_with_no_steps_and_no_noise_is_the_bare_model(model, data, tmp_path):
    x = (data.x_test[:16] + 1) / 2
    opts = RobustnessOptions(purify_steps=0, copy_noise=0.0, **sgld_settings(noise=0.01))
    with torch.no_grad():
        bare = PixelSpace(model)(x)
    for purify in (purify_bpda, purify_full):
        defended = PurifiedClassifier(ClassifierEnergy(model), opts, 3, purify, torch.Generator().manual_seed(0))
        torch.testing.assert_close(defended(x).detach(), bare, rtol=1e-6, atol=1e-6)
    options = {"n_bare": 48, "n_defended": 48, "purify_steps": 0, "copy_noise": 0.0, "defense_gradients": ("bpda",)}
    r = suite_robustness(make_ctx(model, data, tmp_path), options)["robustness"]
    assert r["defended_clean_accuracy"] == r["clean_accuracy"] and r["eps0_is_clean"]


def sgld_settings(noise):
    return {"sgld_step_size": 1.0, "sgld_noise": noise, "sgld_grad_clip": 0.0, "sgld_clamp": False}


def defended_loss_and_grad(model, x, y, purify, opts, seed=0):
    defended = PurifiedClassifier(ClassifierEnergy(model), opts, 2, purify, torch.Generator().manual_seed(seed))
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(defended(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad


def test_full_backprop_differs_from_bpda_on_the_trained_model(model, data):
    x, y = (data.x_test[:8] + 1) / 2, data.y_test[:8]
    opts = RobustnessOptions(purify_steps=3, copy_noise=0.03, **sgld_settings(noise=0.01))
    loss_b, grad_b = defended_loss_and_grad(model, x, y, purify_bpda, opts)  # same seed: the same draws
    loss_f, grad_f = defended_loss_and_grad(model, x, y, purify_full, opts)
    assert torch.allclose(loss_b, loss_f, rtol=1e-5)  # the same forward value
    assert (grad_f - grad_b).norm() > 0.1 * grad_f.norm()  # BPDA's Jacobian I is not the chain's
    assert all(p.grad is None for p in model.parameters())


def test_full_backprop_is_the_exact_gradient():
    torch.manual_seed(0)  # a smooth (SiLU) net, so a central difference is exact to O(h²)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 32), torch.nn.SiLU(), torch.nn.Linear(32, 5)).double()
    with torch.no_grad():
        net[3].weight.mul_(5)  # curvature, so that purification is far from the identity
    x, y = torch.rand(6, 1, 4, 4, dtype=torch.float64), torch.arange(6) % 5
    opts = RobustnessOptions(purify_steps=3, copy_noise=0.0, **sgld_settings(noise=0.0))  # deterministic
    _, grad_b = defended_loss_and_grad(net, x, y, purify_bpda, opts)
    _, grad_f = defended_loss_and_grad(net, x, y, purify_full, opts)
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    h = 1e-5
    plus, _ = defended_loss_and_grad(net, x + h * d, y, purify_bpda, opts)
    minus, _ = defended_loss_and_grad(net, x - h * d, y, purify_bpda, opts)
    numeric = ((plus - minus) / (2 * h)).item()
    assert (grad_f * d).sum().item() == pytest.approx(numeric, rel=1e-6)
    assert (grad_b * d).sum().item() != pytest.approx(numeric, rel=1e-2)


def test_eot_draws_fresh_noise_every_forward(model, data):
    x = (data.x_test[:4] + 1) / 2
    opts = RobustnessOptions(purify_steps=1, copy_noise=0.03, **sgld_settings(noise=0.0))  # only the copies vary
    defended = PurifiedClassifier(ClassifierEnergy(model), opts, 2, purify_bpda, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.equal(defended(x), defended(x))


def test_attacks_see_gradients_where_cross_entropy_saturates():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5))
    x = torch.rand(20, 1, 4, 4)
    with torch.no_grad():
        net[1].weight.mul_(1e4)  # margins in the thousands, as behind purification of a non-EBM
        y = net(x).argmax(1)  # correctly classified, confidently
    assert zero_gradient_fraction(net, x, y, 8) >= 0.5  # plain CE: exactly 0 in float32, PGD is blind
    assert zero_gradient_fraction(NormalizedLogits(net), x, y, 8) == 0.0
    assert torch.equal(NormalizedLogits(net)(x).argmax(1), y)


def test_errors(model, data, tmp_path, monkeypatch):
    ctx = make_ctx(model, data, tmp_path)
    with pytest.raises(ValueError, match="did you mean 'restarts'"):
        suite_robustness(ctx, {"restart": 3})
    with pytest.raises(ValueError, match="use resolve_options"):
        PurifiedClassifier(ClassifierEnergy(model), RobustnessOptions(), 2, purify_bpda, torch.Generator())
    with pytest.raises(ValueError, match="restarts must be >= 1"):
        suite_robustness(ctx, {"restarts": 0})
    with pytest.raises(ValueError, match="unknown defense gradient"):
        suite_robustness(ctx, {"defense_gradients": ("bdpa",)})
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import torchattacks now raises ImportError
    with pytest.raises(ImportError, match=r"pip install --no-deps torchattacks==3\.5\.1"):
        suite_robustness(ctx)


def test_the_baseline_is_also_defended_by_the_models_purifier(tiny_digits_jem, model, data, tmp_path):
    """Model first (it leaves its purifier in the shared state), then the baseline behind its own purifier and
    behind the model's: the cross curves exist, start at their own clean accuracy, and use the model's SGLD."""
    from jemkit.evaluation.context import EvalContext

    shared, options = {}, {"n_bare": 24, "n_defended": 12, "defense_gradients": ("bpda",), "l2_eps": [0.0]}
    ctx = lambda m, label: EvalContext(m, data, tmp_path, label, quick=True, progress=False, shared=shared)  # noqa: E731
    jem = suite_robustness(ctx(tiny_digits_jem, "model"), {**options, "sgld_step_size": 0.5})["robustness"]
    assert "bpda_by_model" not in jem["linf"] and "robustness_purifier" in shared
    base = suite_robustness(ctx(model, "baseline"), options)["robustness"]
    assert set(base["linf"]["monotone"]) == {"bare", "bpda", "bpda_by_model"}
    assert base["linf"]["bpda_by_model"][0] == base["defended_clean_accuracy_by_model"]
    assert base["defense_by_model"]["sgld_step_size"] == 0.5 and base["defense"]["sgld_step_size"] == 1.0
    assert base["eps0_is_clean"] and base["monotone"] and "bpda_by_model" in base["zero_gradient_fraction"]
    off = suite_robustness(ctx(model, "baseline"), {**options, "cross_purify": False})["robustness"]
    assert "bpda_by_model" not in off["linf"] and "defended_clean_accuracy_by_model" not in off
    assert off["linf"]["bpda"] == base["linf"]["bpda"]  # the extra defense draws from its own streams


def test_the_models_purifier_with_another_classifier(tiny_digits_jem, model, data):
    """Purified by one energy, classified by another net: with no steps and no noise it is that net; with steps,
    the purified inputs are the energy's own (same draws), only the classifier differs."""
    x = (data.x_test[:16] + 1) / 2
    still = RobustnessOptions(purify_steps=0, copy_noise=0.0, **sgld_settings(noise=0.01))
    with torch.no_grad():
        cross = PurifiedClassifier(ClassifierEnergy(tiny_digits_jem), still, 2, purify_bpda, torch.Generator().manual_seed(0),
                                   classifier=model)(x)
        torch.testing.assert_close(cross, PixelSpace(model)(x), rtol=1e-6, atol=1e-6)
    moving = RobustnessOptions(purify_steps=3, copy_noise=0.03, **sgld_settings(noise=0.01))
    energy, seen = ClassifierEnergy(tiny_digits_jem), {}

    def recording(name, net):
        return lambda z: seen.setdefault(name, z.detach()) is None or net(z)

    own = PurifiedClassifier(energy, moving, 2, purify_bpda, torch.Generator().manual_seed(0))(x)
    same = PurifiedClassifier(energy, moving, 2, purify_bpda, torch.Generator().manual_seed(0),
                              classifier=recording("jem", tiny_digits_jem))(x)
    torch.testing.assert_close(same, own)  # classifier = the energy's own net: the model's defense itself
    other = PurifiedClassifier(energy, moving, 2, purify_bpda, torch.Generator().manual_seed(0),
                               classifier=recording("baseline", model))(x)
    torch.testing.assert_close(seen["baseline"], seen["jem"])  # the same purified copies ...
    assert not torch.allclose(seen["baseline"], (x * 2 - 1).repeat(2, 1, 1, 1), atol=1e-3)  # ... moved by SGLD
    assert not torch.allclose(other, own)  # ... classified by another net
