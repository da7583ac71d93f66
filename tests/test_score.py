"""Score matching: objectives on analytic Gaussians, annealed Langevin, score networks, presets via the CLI."""
import math

import pytest
import torch
from torch import nn

from jemkit.objectives import (EnergyScore, denoising_score_matching, exact_score_matching, ncsn_loss,
                               sliced_score_matching)
from jemkit.sampling import annealed_langevin, geometric_sigmas
from tests.conftest import GaussianEnergy

MEAN = torch.tensor([0.3, -0.2])
COV = torch.tensor([[0.5, 0.2], [0.2, 0.3]])


def gaussian_data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return MEAN + torch.randn(n, 2, generator=g) @ torch.linalg.cholesky(COV).T


class LinearScore(nn.Module):
    """s(x) = −A (x − b): the family that holds every Gaussian's score."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.a, self.b = nn.Parameter(a.clone()), nn.Parameter(b.clone())

    def forward(self, x, sigma=None):
        return -(x - self.b) @ self.a.T


def smoothed_gaussian_score(sigma: float) -> LinearScore:
    """The true score of p_σ = N(MEAN, COV + σ²I)."""
    return LinearScore(torch.linalg.inv(COV + sigma**2 * torch.eye(2)), MEAN)


def dsm(score, x, sigma, seed=1):
    return denoising_score_matching(score, x, sigma, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- denoising SM

def test_dsm_is_minimized_by_the_true_score_of_the_smoothed_gaussian():
    x, sigma = gaussian_data(400_000), 0.3
    true = smoothed_gaussian_score(sigma)
    loss_true = dsm(true, x, sigma)
    loss_true.loss.backward()
    grad_true = torch.cat([true.a.grad.flatten(), true.b.grad])
    for da, db in [(0.5 * torch.eye(2), torch.zeros(2)), (torch.zeros(2, 2), torch.tensor([0.3, 0.0])),
                   (torch.tensor([[0.0, 0.6], [0.6, 0.0]]), torch.zeros(2))]:
        wrong = LinearScore(true.a.detach() + da, true.b.detach() + db)
        out = dsm(wrong, x, sigma)  # the same noise draw: common random numbers
        assert out.loss.item() > loss_true.loss.item() + 1e-3
        out.loss.backward()
        grad_wrong = torch.cat([wrong.a.grad.flatten(), wrong.b.grad])
        assert grad_true.norm() < 0.15 * grad_wrong.norm()
    assert grad_true.norm() < 0.003  # Monte Carlo error only: the gradient vanishes at the true score


def test_dsm_weighting_and_value_at_the_optimum():
    """At the optimum, E‖σ s + z‖² = D − σ² tr((Σ + σ²I)⁻¹) (the irreducible DSM error), so the weighted loss is
    half that; the unweighted loss is the weighted one divided by σ²."""
    x, sigma = gaussian_data(200_000), 0.5
    true = smoothed_gaussian_score(sigma)
    expected = 0.5 * (2 - sigma**2 * torch.trace(torch.linalg.inv(COV + sigma**2 * torch.eye(2))).item())
    weighted = dsm(true, x, sigma).loss.item()
    assert weighted == pytest.approx(expected, rel=0.02)
    unweighted = denoising_score_matching(true, x, sigma, weighted=False, generator=torch.Generator().manual_seed(1))
    assert unweighted.loss.item() == pytest.approx(weighted / sigma**2, rel=1e-5)


def test_dsm_refuses_bad_sigma_and_bad_score_shape():
    x = gaussian_data(8)
    with pytest.raises(ValueError, match="> 0"):
        denoising_score_matching(lambda x, s: x, x, 0.0)
    with pytest.raises(ValueError, match="shape"):
        denoising_score_matching(lambda x, s: x, x, torch.ones(3))
    with pytest.raises(ValueError, match="shaped like its input"):
        denoising_score_matching(lambda x, s: x[:, :1], x, 0.1)


# ---------------------------------------------------------------- sliced and exact SM

def test_exact_sm_of_the_true_score_is_minus_half_trace_of_precision():
    """Hyvärinen's J(s) = E[tr ∇s + ½‖s‖²]; at s = ∇log N(μ, Σ) it equals −½ tr Σ⁻¹."""
    x = gaussian_data(100_000)
    out = exact_score_matching(smoothed_gaussian_score(0.0), x)
    assert out.loss.item() == pytest.approx(-0.5 * torch.trace(torch.linalg.inv(COV)).item(), rel=0.02)


@pytest.mark.parametrize("variance_reduced", [False, True])
@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
def test_sliced_sm_agrees_with_exact_sm(variance_reduced, projection):
    torch.manual_seed(0)
    score = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))  # nonlinear: a non-constant Jacobian
    fn = lambda x, sigma: score(x)  # noqa: E731
    x = gaussian_data(20_000)
    exact = exact_score_matching(fn, x).loss.item()
    sliced = sliced_score_matching(fn, x, 4, variance_reduced=variance_reduced, projection=projection,
                                   generator=torch.Generator().manual_seed(2)).loss.item()
    assert sliced == pytest.approx(exact, abs=0.03 + 0.03 * abs(exact))


def test_sliced_sm_gradient_matches_exact_sm_gradient():
    """Both estimate the same objective, so their parameter gradients agree up to Monte Carlo error."""
    x = gaussian_data(50_000)
    grads = []
    for objective in (lambda s: exact_score_matching(s, x),
                      lambda s: sliced_score_matching(s, x, 8, variance_reduced=True,
                                                      generator=torch.Generator().manual_seed(3))):
        s = LinearScore(torch.eye(2), torch.zeros(2))
        objective(s).loss.backward()
        grads.append(torch.cat([s.a.grad.flatten(), s.b.grad]))
    assert torch.allclose(grads[0], grads[1], atol=0.05)
    assert grads[0].norm() > 0.5  # far from the optimum: the comparison is not between two zeros


def test_energy_score_is_minus_grad_energy_and_trains_through_exact_sm():
    energy = GaussianEnergy(MEAN, COV)
    x = gaussian_data(16)
    s = EnergyScore(energy)(x)
    assert torch.allclose(s, -(x - MEAN) @ torch.linalg.inv(COV), atol=1e-5)
    # a learnable energy: exact SM backpropagates through −∇ₓE (create_graph) into its parameters
    quad = nn.Linear(2, 2, bias=False)
    learnable = lambda x, y=None: 0.5 * quad(x).pow(2).sum(1)  # noqa: E731
    out = exact_score_matching(EnergyScore(learnable), x)
    out.loss.backward()
    assert quad.weight.grad is not None and quad.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- NCSN

def test_geometric_sigmas():
    s = geometric_sigmas(1.0, 0.01, 5)
    assert s[0].item() == pytest.approx(1.0) and s[-1].item() == pytest.approx(0.01)
    ratios = s[1:] / s[:-1]
    assert torch.allclose(ratios, ratios[0].expand(4)) and (ratios < 1).all()
    assert geometric_sigmas(0.5, 0.5, 1).tolist() == [0.5]
    with pytest.raises(ValueError):
        geometric_sigmas(0.1, 1.0, 3)


def test_ncsn_loss_is_the_mean_of_weighted_dsm_over_levels():
    """With one σ per example, NCSN's loss averages σ²-weighted DSM over the levels; at the true noise-conditional
    score of a Gaussian it equals the mean of the per-level optima, and a σ-blind score does worse."""
    sigmas = geometric_sigmas(1.0, 0.1, 3)
    x = gaussian_data(150_000)

    def true_score(x, sigma):  # s(x, σ) = −(Σ + σ²I)⁻¹ (x − μ), per example
        prec = torch.linalg.inv(COV + sigma.view(-1, 1, 1) ** 2 * torch.eye(2))
        return -torch.einsum("bij,bj->bi", prec, x - MEAN)

    out = ncsn_loss(true_score, x, sigmas, generator=torch.Generator().manual_seed(4))
    optimum = [0.5 * (2 - s**2 * torch.trace(torch.linalg.inv(COV + s**2 * torch.eye(2)))) for s in sigmas.tolist()]
    assert out.loss.item() == pytest.approx(sum(optimum).item() / 3, rel=0.02)
    blind = smoothed_gaussian_score(0.3)
    assert ncsn_loss(blind, x, sigmas, generator=torch.Generator().manual_seed(4)).loss.item() > out.loss.item() + 0.01
    assert set(out.stats) == {"score_norm"} and out.stats["score_norm"] > 0


# ---------------------------------------------------------------- annealed Langevin

def test_annealed_langevin_recovers_a_gaussian():
    def score(x, sigma):
        prec = torch.linalg.inv(COV + sigma[0] ** 2 * torch.eye(2))
        return -(x - MEAN) @ prec

    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4000, 2, generator=g) * 2 - 1
    x = annealed_langevin(score, x0, sigmas=geometric_sigmas(1.0, 0.01, 8), steps=100, step_scale=1e-4, generator=g)
    assert torch.allclose(x.mean(0), MEAN, atol=0.04)
    assert torch.allclose(torch.cov(x.T), COV, atol=0.05)


def test_annealed_langevin_contract(tiny_energy):
    """Callback per step, σ's in order, reproducible from the generator, no side effects on a module."""
    from jemkit.nets import ScoreMLP

    torch.manual_seed(0)
    net = ScoreMLP(2, width=16)
    net.train()
    sigmas = geometric_sigmas(1.0, 0.1, 3)
    seen = []
    x0 = torch.zeros(5, 2)
    run = lambda cb=None: annealed_langevin(net, x0, sigmas=sigmas, steps=4, step_scale=1e-3,  # noqa: E731
                                            generator=torch.Generator().manual_seed(1), callback=cb)
    a = run(seen.append)
    assert torch.equal(a, run())
    assert [d["step"] for d in seen] == list(range(12)) and [d["sigma_index"] for d in seen] == [0] * 4 + [1] * 4 + [2] * 4
    assert net.training and all(p.requires_grad and p.grad is None for p in net.parameters())
    assert torch.equal(x0, torch.zeros(5, 2))  # the input is not modified
    # an energy model through EnergyScore: no parameter gradients either
    before = tiny_energy.training
    annealed_langevin(EnergyScore(tiny_energy), torch.zeros(3, 16), sigmas=sigmas, steps=2, step_scale=1e-3)
    assert tiny_energy.training == before and all(p.grad is None for p in tiny_energy.parameters())


def test_annealed_langevin_refuses_bad_settings_and_reports_blow_up():
    with pytest.raises(ValueError, match="step_scale"):
        annealed_langevin(lambda x, s: -x, torch.zeros(2, 2), sigmas=torch.tensor([1.0]), step_scale=0.0)
    with pytest.raises(ValueError, match="> 0"):
        annealed_langevin(lambda x, s: -x, torch.zeros(2, 2), sigmas=torch.tensor([1.0, 0.0]))
    with pytest.raises(FloatingPointError, match="lower the step scale"):
        annealed_langevin(lambda x, s: 1e3 * x, torch.ones(2, 2), sigmas=torch.tensor([1.0]), steps=200, step_scale=1.0)


# ---------------------------------------------------------------- score networks

@pytest.mark.parametrize("mode", ["scale", "embed"])
def test_score_networks_shapes_and_sigma_scaling(mode):
    from jemkit.nets import ScoreCNN, ScoreMLP, build_net

    torch.manual_seed(0)
    for net, x in ((ScoreMLP(2, width=16, sigma_mode=mode), torch.randn(4, 2)),
                   (ScoreCNN(1, width=8, sigma_mode=mode), torch.randn(4, 1, 28, 28)),
                   (ScoreCNN(3, width=8, sigma_mode=mode), torch.randn(2, 3, 8, 12))):
        sigma = torch.full((len(x),), 0.5)
        s = net(x, sigma)
        assert s.shape == x.shape and torch.isfinite(s).all()
        if mode == "scale":  # s = f(x)/σ exactly
            assert torch.allclose(net(x, sigma / 2), 2 * s, rtol=1e-4, atol=1e-5)
    assert isinstance(build_net("score_mlp", 2, 8, width=16), ScoreMLP)  # num_classes is not passed to score nets
    with pytest.raises(ValueError, match="divisible by 4"):
        ScoreCNN(1, width=8)(torch.randn(1, 1, 10, 10), torch.ones(1))
    with pytest.raises(ValueError, match="needs sigma"):
        ScoreMLP(2)(torch.randn(1, 2))


def test_score_model_checks_input_shape():
    from jemkit.nets import ScoreMLP
    from jemkit.model import ScoreModel

    model = ScoreModel(ScoreMLP(2, width=8), (2,))
    assert model(torch.zeros(3, 2), 0.1).shape == (3, 2)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        model(torch.zeros(3, 1, 2, 1), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((1, 2), math.nan), 0.1)


# ---------------------------------------------------------------- training and the CLI

TINY = ["--quiet", "--set", "train.steps=2", "--set", "train.log_every=1", "--set", "train.eval_every=2",
        "--set", "train.sample_every=2", "--set", "score.sampler_steps=2", "--set", "train.tensorboard=false"]


def test_toy_presets_run_two_steps_resume_and_sample(tmp_path, capsys):
    from jemkit.cli import main

    for preset in ("toy-ncsn", "toy-dsm"):
        run = tmp_path / preset
        assert main(["train", "--preset", preset, "--out", str(run), *TINY, "--set", "model.width=16"]) == 0
        rows = (run / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        last = dict(zip(header, rows[-1].split(",")))
        assert len(rows) == 3 and float(last["loss"]) > 0 and float(last["test_loss"]) > 0 and last["test_acc"] == ""
        assert (run / "samples" / "step_00000002.png").read_bytes()[:4] == b"\x89PNG"
        assert not list((run / "checkpoints").glob("*.buffer.safetensors"))  # no replay buffer
        # resume with more steps continues from step 2
        assert main(["train", "--preset", preset, "--out", str(run), "--resume", *TINY, "--set", "model.width=16",
                     "--set", "train.steps=3"]) == 0
        assert (run / "checkpoints" / "step_00000003.json").is_file()
        capsys.readouterr()
        assert main(["sample", str(run), "--out", str(tmp_path / f"{preset}.png"), "-n", "50", "--steps", "3"]) == 0
        printed = capsys.readouterr().out
        assert "annealed Langevin" in printed and "energy distance" in printed
        assert (tmp_path / f"{preset}.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["sample", str(run), "--out", str(tmp_path / "c.png"), "--class", "1"]) == 2


def test_score_training_resumes_bitwise(tmp_path):
    """A score run that lost its last checkpoint resumes from step 2 and ends with the same weights (noise, σ's and
    data position are restored)."""
    import shutil

    from safetensors.torch import load_file

    from jemkit.config import load_preset
    from jemkit.training import train

    cfg = load_preset("toy-ncsn", ["model.width=16", "train.steps=4", "train.checkpoint_every=2", "train.sample_every=100",
                                   "train.eval_every=100", "train.tensorboard=false"])
    train(cfg, tmp_path / "a", progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for f in (tmp_path / "b" / "checkpoints").glob("step_00000004.*"):
        f.unlink()
    train(cfg, tmp_path / "b", progress=False)
    a = load_file(str(tmp_path / "a" / "checkpoints" / "step_00000004.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "step_00000004.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = load_file(str(tmp_path / "a" / "checkpoints" / "step_00000002.safetensors"))
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the last two steps changed the weights


def test_ssm_and_fmnist_ncsn_run_two_steps(tmp_path, monkeypatch):
    """fmnist-ncsn on tiny Fashion-MNIST IDX files written here (the real layout), and ssm on a toy."""
    from jemkit.cli import main
    from tests.test_data import make_fake_fmnist

    monkeypatch.setenv("JEMKIT_CACHE", str(tmp_path / "cache"))
    make_fake_fmnist(tmp_path / "fm", n_train=40, n_test=20)
    run = tmp_path / "fm-run"
    assert main(["train", "--preset", "fmnist-ncsn", "--out", str(run), *TINY, "--set", "model.width=8",
                 "--set", "data.batch_size=16", "--set", f"data.root={tmp_path / 'fm'}", "--set", "data.download=false"]) == 0
    assert (run / "samples" / "step_00000002.png").is_file()
    assert main(["sample", str(run), "--out", str(tmp_path / "fm.png"), "-n", "4", "--steps", "1"]) == 0
    assert main(["train", "--preset", "toy-dsm", "--out", str(tmp_path / "ssm"), *TINY, "--set", "model.width=16",
                 "--set", "train.objective=ssm", "--set", "score.n_projections=2"]) == 0


@pytest.mark.parametrize("sets, message", [
    (["model.arch=cnn"], "trains a score network"),
    (["train.objective=jem"], "is a score network"),
    (["data.name=digits"], "score_mlp is for 2-D points"),
    (["score.sigma_max=0.001"], "sigma_max must be >= score.sigma_min"),
    (["score.sigma_min=0"], "score.sigma_min must be > 0"),
    (["model.sigma_mode=log"], "model.sigma_mode"),
    (["data.labels_per_class=5"], "use no labels"),
])
def test_score_config_is_validated(sets, message):
    from jemkit.config import ConfigError, load_preset

    with pytest.raises(ConfigError, match=message):
        load_preset("toy-ncsn", sets)


def test_score_checkpoint_is_not_loaded_as_a_classifier(tmp_path, capsys):
    """`jemkit.load`/`jemkit eval` on a score run say what it is; `jemkit train` reports the held-out loss."""
    import jemkit
    from jemkit.cli import main

    run = tmp_path / "toy"
    assert main(["train", "--preset", "toy-dsm", "--out", str(run), "--quiet", "--set", "train.steps=2",
                 "--set", "train.eval_every=2"]) == 0
    assert "held-out score-matching loss" in capsys.readouterr().out
    with pytest.raises(ValueError, match="score model"):
        jemkit.load(run)
    assert main(["eval", str(run), "--out", str(tmp_path / "ev"), "--suite", "accuracy", "--quiet"]) == 2
    assert "score model" in capsys.readouterr().err
