"""How training chains start and run: JEM++'s class-Gaussian initialization draws the Gaussians it
fitted, the label-free Gaussian draws the pooled moments whatever class is asked, a semi-supervised run
fits its class Gaussians to its labelled images only (and so do evaluation and sampling), and ``sampler.eval_mode=false`` runs the chains with batch norm in train mode (JEM++),
leaving the module's modes and flags as they were."""
import torch
from torch import nn

from jemkit.config import SamplerConfig, load_preset
from jemkit.data import labelled_subset
from jemkit.energy import ClassifierEnergy
from jemkit.sampling import init_from_record, make_sampler
from jemkit.sampling.init import ClassGaussianInit, GaussianInit, build_init
from jemkit.training.run import Run


def test_class_gaussian_init_draws_the_fitted_moments():
    g = torch.Generator().manual_seed(0)
    k, d, n_fit, n = 3, 4, 400, 20000
    centres = torch.tensor([[-0.3, 0.0, 0.2, 0.1], [0.3, -0.2, 0.0, 0.0], [0.0, 0.3, -0.3, 0.2]])
    mix = torch.randn(k, d, d, generator=g) * 0.05  # correlated, std ≈ 0.1: clipping to [−1, 1] is > 6σ away
    y_fit = torch.arange(k).repeat_interleave(n_fit)
    x_fit = centres[y_fit] + torch.einsum("nij,nj->ni", mix[y_fit], torch.randn(k * n_fit, d, generator=g))
    init = ClassGaussianInit.fit(x_fit.view(-1, 1, 2, 2), y_fit, k)

    y = torch.arange(k).repeat_interleave(n)
    x = init(len(y), (1, 2, 2), y=y, generator=g).view(len(y), d).double()
    for c in range(k):
        mean, cov = x_fit[y_fit == c].double().mean(0), torch.cov(x_fit[y_fit == c].double().T, correction=0)
        torch.testing.assert_close(init.means[c].double(), mean, rtol=0, atol=1e-6)  # the fit: the class's moments
        fitted_cov = (init.scale_tril[c] @ init.scale_tril[c].T).double()
        torch.testing.assert_close(fitted_cov, cov + 1e-4 * torch.eye(d, dtype=torch.float64), rtol=0, atol=1e-6)
        xc = x[y == c]
        var = fitted_cov.diagonal()
        assert ((xc.mean(0) - mean).abs() < 5 * (var / n).sqrt()).all()  # within 5 standard errors
        se_cov = ((var[:, None] * var[None, :] + fitted_cov**2) / n).sqrt()
        assert ((torch.cov(xc.T, correction=0) - fitted_cov).abs() < 5 * se_cov).all()


def test_gaussian_init_draws_the_pooled_moments_and_ignores_the_class():
    g = torch.Generator().manual_seed(0)
    x_fit = torch.cat([torch.randn(500, 4, generator=g) * 0.1 - 0.3, torch.randn(500, 4, generator=g) * 0.1 + 0.3])
    init = build_init("gaussian", x_fit.view(-1, 1, 2, 2))
    assert isinstance(init, GaussianInit)
    cov = torch.cov(x_fit.double().T, correction=0) + 1e-4 * torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close((init.scale_tril[0] @ init.scale_tril[0].T).double(), cov, rtol=0, atol=1e-6)
    n = 20000
    a = init(n, (1, 2, 2), y=torch.zeros(n, dtype=torch.long), generator=torch.Generator().manual_seed(1))
    b = init(n, (1, 2, 2), y=torch.full((n,), 7), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b), "the class asked for changes nothing"
    se = (cov.diagonal() / n).sqrt()
    assert ((a.view(n, 4).double().mean(0) - x_fit.double().mean(0)).abs() < 5 * se).all()  # both clusters pooled


def test_semi_supervised_run_fits_class_gaussians_to_its_labelled_images_only(tmp_path):
    tiny = ["model.width=8", "buffer.size=100", "sampler.steps=2", "train.steps=2", "buffer.init=class_gaussian",
            "data.labels_per_class=5", "data.split_seed=3"]
    run = Run(load_preset("digits-jem", tiny), tmp_path / "run")
    idx = labelled_subset(run.data.y_train, 5, 10, 3)
    seen = run.data.x_train[idx].reshape(len(idx), -1)[run.data.y_train[idx] == 4].mean(0)
    everything = run.data.x_train.reshape(len(run.data.x_train), -1)[run.data.y_train == 4].mean(0)
    torch.testing.assert_close(run.init.means[4], seen)
    assert not torch.allclose(run.init.means[4], everything, atol=1e-3)
    again = init_from_record(run.record, run.data.x_train, run.data.y_train)  # how evaluation and `jemkit sample` refit it
    assert torch.equal(again.means, run.init.means) and torch.equal(again.scale_tril, run.init.scale_tril)
    pooled = Run(load_preset("digits-jem", [*tiny[:-3], "buffer.init=gaussian", "data.labels_per_class=5"]), tmp_path / "g")
    torch.testing.assert_close(pooled.init.means[0], pooled.data.x_train.reshape(len(pooled.data.x_train), -1).mean(0))


class BatchNormNet(nn.Module):
    """Logits through batch norm: in train mode they depend on the batch, in eval mode on running stats."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.SiLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


def chain(net: nn.Module, eval_mode: bool) -> torch.Tensor:
    sampler = make_sampler(SamplerConfig(steps=5, step_size=0.5, noise=0.01, eval_mode=eval_mode))
    x0 = torch.rand(16, 1, 2, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return sampler(ClassifierEnergy(net), x0, generator=torch.Generator().manual_seed(2))


def test_eval_mode_false_runs_the_chains_with_train_mode_batch_norm():
    net = BatchNormNet().train()  # as the training loop leaves it
    stats = net.body[2].running_mean.clone()
    in_eval = chain(net, eval_mode=True)
    assert net.training and all(m.training for m in net.modules()), "modes restored"
    assert torch.equal(net.body[2].running_mean, stats), "eval mode: batch norm used its running statistics"

    in_train = chain(net, eval_mode=False)
    assert net.training and all(m.training for m in net.modules())
    assert not torch.equal(net.body[2].running_mean, stats), "train mode: batch norm saw the chains' batches"
    assert not torch.allclose(in_train, in_eval, atol=1e-3), "the chain follows the train-mode energy"
    assert all(p.requires_grad and p.grad is None for p in net.parameters()), "flags restored, no parameter gradients"

