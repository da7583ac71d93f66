"""Likelihood of an energy model: annealed importance sampling (AIS, Neal 2001) for log Z.

Path. From a normalized base p0 to the target p1 ∝ exp(−E(x)) along the geometric path
p_β ∝ p0^{1−β} · exp(−β E), β_0 = 0 < β_1 < … < β_T = 1 (sigmoid schedule, Grosse et al. 2015).
The path and the target live on the support of p0: with the uniform base on the box [−1, 1]^D,
Z = ∫_{[−1,1]^D} exp(−E(x)) dx, the normalizer of the model as a density on the data box (a
classifier's exp(−E) need not be integrable on all of R^D).

Tilted models. A model trained as an exponential tilt of a Gaussian (``train.objective=tilt``) has the density
p1 ∝ N(x) e^{−E(x)} on R^D; its base is that Gaussian (``WhitenedGaussian``), whose chart x = μ + L u whitens
it, so the path runs between φ(u) and φ(u) e^{−E(x(u))} (φ the standard normal) and Z = E_N[e^{−E}].

Coordinates. Every base gives an unconstrained chart u ∈ R^D with x = x(u) (identity for the
Gaussian; x = tanh u for the box). AIS runs in u, where the path is
log f_β(u) = (1−β) log p0(u) + β [−E(x(u)) + log|det ∂x/∂u|] — the same distributions pushed
through the chart, so Z is unchanged and MALA never proposes outside the box.

Weights and transitions. log w = Σ_t (β_t − β_{t−1}) [log f_1(u_{t−1}) − log p0(u_{t−1})], with
u_t ~ T_t(u_{t−1}, ·). T_t is Metropolis-adjusted Langevin (MALA), which leaves p_{β_t} exactly
invariant, so mean(w) is an unbiased estimate of Z (unadjusted Langevin would bias it). MALA step
sizes are tuned by a pilot run on separate chains (adapted towards ``target_accept`` per
temperature); the estimation run then uses that fixed schedule, so its kernels do not depend on
its own chains and unbiasedness is kept.

Estimate and error. log Ẑ = logmeanexp(log w) (Ẑ is unbiased for Z, so log Ẑ is a stochastic lower
bound on log Z in expectation). Standard error by the delta method over the n independent chains:
SE(log Ẑ) ≈ std(w) / (√n · mean(w)). With heavy-tailed weights (small effective sample size
ESS = (Σw)² / Σw²) the SE itself is unreliable and too small: raise n_temps until ESS is a good
fraction of n.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..data import ood_sets
from ..images import save_grid
from ..utils import closest, frozen
from .context import EvalContext
from .gaussian import RidgedGaussian, density_base, training_ridged_gaussian
from .ood import auroc

# ---------------------------------------------------------------------------------------------
# Base distributions, each with an unconstrained chart u ↦ x(u)
# ---------------------------------------------------------------------------------------------


class Base(Protocol):
    """A normalized base density p0 of x ∈ (support) ⊂ R^shape, expressed in a chart u ∈ R^shape."""

    shape: tuple[int, ...]

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor: ...  # u: (n, *shape)

    def log_prob(self, u: Tensor) -> Tensor: ...  # log p0 of u in chart coordinates: (n,)

    def to_data(self, u: Tensor) -> tuple[Tensor, Tensor]: ...  # x(u), log|det ∂x/∂u|: (n, *shape), (n,)


@dataclass
class GaussianBase:
    """N(mean, std² I) on R^shape; the chart is the identity."""

    shape: tuple[int, ...]
    mean: float = 0.0
    std: float = 1.0
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn((n, *self.shape), generator=generator, device=self.device, dtype=self.dtype)
        return eps.mul_(self.std).add_(self.mean)

    def log_prob(self, u: Tensor) -> Tensor:
        d = math.prod(self.shape)
        z = ((u - self.mean) / self.std).flatten(1)
        return -0.5 * z.pow(2).sum(1) - d * (math.log(self.std) + 0.5 * math.log(2 * math.pi))

    def to_data(self, u: Tensor) -> tuple[Tensor, Tensor]:
        return u, u.new_zeros(u.shape[0])


def _log_sech2(u: Tensor) -> Tensor:
    """log(1 − tanh² u) = 2 (log 2 − |u| − softplus(−2|u|)), stable for large |u|."""
    a = u.abs()
    return 2 * (math.log(2.0) - a - F.softplus(-2 * a))


@dataclass
class UniformBox:
    """Uniform on the data box [−1, 1]^shape (density 2^−D); chart x = tanh u (u ∈ R^D)."""

    shape: tuple[int, ...]
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        v = torch.rand((n, *self.shape), generator=generator, device=self.device, dtype=torch.float64)
        return (0.5 * torch.logit(v.clamp_(min=1e-300))).to(self.dtype)  # atanh(2v − 1)

    def log_prob(self, u: Tensor) -> Tensor:
        d = math.prod(self.shape)
        return _log_sech2(u).flatten(1).sum(1) - d * math.log(2.0)

    def to_data(self, u: Tensor) -> tuple[Tensor, Tensor]:
        return torch.tanh(u), _log_sech2(u).flatten(1).sum(1)


@dataclass
class WhitenedGaussian:
    """The base of a tilted model, N(μ, Σ + ridge·I) = ``gaussian``, in its whitening chart x = μ + L u, u ~ N(0, I).
    The target of a tilted model is N(x) e^{−E(x)}, not e^{−E(x)}: ``to_data`` returns, in place of the Jacobian
    term, log N(x(u)) + log|det L| = log φ(u), so the AIS target in the chart is φ(u) e^{−E(x(u))} and
    Z = E_N[e^{−E}] (the tilt's normalizer; the base is normalized)."""

    shape: tuple[int, ...]
    gaussian: RidgedGaussian
    dtype: torch.dtype = torch.float32

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn((n, *self.shape), generator=generator, device=self.gaussian.mean.device, dtype=self.dtype)

    def log_prob(self, u: Tensor) -> Tensor:
        d = math.prod(self.shape)
        return -0.5 * u.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)

    def to_data(self, u: Tensor) -> tuple[Tensor, Tensor]:
        return self.gaussian.to_data(u.flatten(1)).view(u.shape), self.log_prob(u)


# ---------------------------------------------------------------------------------------------
# AIS with MALA transitions
# ---------------------------------------------------------------------------------------------


@dataclass
class AISResult:
    log_z: float  # logmeanexp of the log weights
    stderr: float  # delta-method standard error of log_z
    log_weights: Tensor  # (n_chains,) float64
    ess: float  # effective sample size (Σw)² / Σw²
    acceptance: float  # mean MALA acceptance rate of the estimation run
    samples: Tensor  # x at β = 1 (data space): (n_chains, *shape)
    reverse: "AISResult | None" = None  # the reverse run of ``bidirectional``: its log_z = −logmeanexp(log w_rev)


def _summary(log_w: Tensor, sign: float) -> tuple[float, float, float]:
    """log Z = sign · logmeanexp(log w), its delta-method standard error std(w) / (√n mean(w)), and the ESS."""
    n = len(log_w)
    w = (log_w - log_w.max()).exp()
    log_z = sign * (torch.logsumexp(log_w, 0) - math.log(n)).item()
    return log_z, (w.std() / (math.sqrt(n) * w.mean())).item(), (w.sum().pow(2) / w.pow(2).sum()).item()


@dataclass
class _State:
    """Chains at one point of the path: chart coordinates, both log-density ends and their gradients."""

    u: Tensor
    log0: Tensor  # log p0(u)                          (n,)
    log1: Tensor  # −E(x(u)) + log|det ∂x/∂u|          (n,)
    grad0: Tensor
    grad1: Tensor

    def log_f(self, beta: float) -> Tensor:
        return (1 - beta) * self.log0 + beta * self.log1

    def grad_f(self, beta: float) -> Tensor:
        return (1 - beta) * self.grad0 + beta * self.grad1

    def where(self, keep_new: Tensor, new: "_State") -> "_State":
        m = keep_new.view(-1, *([1] * (self.u.dim() - 1)))
        return _State(
            torch.where(m, new.u, self.u), torch.where(keep_new, new.log0, self.log0), torch.where(keep_new, new.log1, self.log1),
            torch.where(m, new.grad0, self.grad0), torch.where(m, new.grad1, self.grad1),
        )


def _evaluate(energy: Callable, base: Base, u: Tensor) -> _State:
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        x, log_det = base.to_data(u)
        log1 = -energy(x) + log_det
        log0 = base.log_prob(u)
        (grad1,) = torch.autograd.grad(log1.sum(), u)
        (grad0,) = torch.autograd.grad(log0.sum(), u)
    return _State(u.detach(), log0.detach(), log1.detach(), grad0, grad1)


def _sq(v: Tensor) -> Tensor:
    return v.flatten(1).pow(2).sum(1)


def _mala_step(
    energy: Callable, base: Base, s: _State, beta: float, h: float, generator: torch.Generator | None
) -> tuple[_State, Tensor]:
    """One MALA move (Roberts & Tweedie 1996) invariant for p_β:
    u' = u + h ∇log f_β(u) + √(2h) ξ, accepted with prob min(1, f(u') q(u|u') / (f(u) q(u'|u))).
    Proposals with a NaN or −inf log density are rejected. Returns the new state and the (n,) accept mask."""
    xi = torch.randn(s.u.shape, generator=generator, device=s.u.device, dtype=s.u.dtype)
    new = _evaluate(energy, base, s.u + h * s.grad_f(beta) + math.sqrt(2 * h) * xi)
    log_q_forward = -0.5 * _sq(xi)  # −‖u' − u − h g(u)‖² / 4h
    log_q_backward = -_sq(s.u - new.u - h * new.grad_f(beta)) / (4 * h)
    log_alpha = new.log_f(beta) - s.log_f(beta) + log_q_backward - log_q_forward
    log_uniform = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype).log()
    accept = log_uniform < log_alpha  # NaN compares False: rejected
    return s.where(accept, new), accept


def sigmoid_schedule(n_temps: int, delta: float = 4.0) -> list[float]:
    """β_0 = 0 < … < β_T = 1 (T = n_temps), denser at both ends (Grosse, Ghahramani & Adams 2015)."""
    if n_temps < 1:
        raise ValueError(f"n_temps must be >= 1, got {n_temps}")
    s = torch.sigmoid(delta * torch.linspace(-1, 1, n_temps + 1, dtype=torch.float64))
    b = (s - s[0]) / (s[-1] - s[0])
    return b.tolist()


def _anneal(energy, base, n, betas, step_sizes, mala_steps, generator, adapt: float | None, progress: bool, desc: str,
            start: _State | None = None):
    """One AIS pass over ``n`` chains along ``betas`` (increasing: forward; decreasing: reverse), from
    ``start`` or from the base. With ``adapt`` (a target acceptance) the step size is tuned on the fly and
    the schedule reached is returned; otherwise ``step_sizes[t]`` is used at β_t."""
    s = start if start is not None else _evaluate(energy, base, base.sample(n, generator=generator))
    log_w = torch.zeros(n, dtype=torch.float64, device=s.u.device)
    h, used, accepted = step_sizes[0], [step_sizes[0]], []
    for t in tqdm(range(1, len(betas)), desc=desc, disable=not progress, leave=False):
        log_w += (betas[t] - betas[t - 1]) * (s.log1 - s.log0).double()
        if adapt is None:
            h = step_sizes[t]
        for _ in range(mala_steps):
            s, acc = _mala_step(energy, base, s, betas[t], h, generator)
            accepted.append(acc.float().mean())
            if adapt is not None:
                h *= math.exp(2.0 * (accepted[-1].item() - adapt))  # Robbins–Monro-style, log-scale
        used.append(h)
    acceptance = torch.stack(accepted).mean().item() if accepted else float("nan")
    return log_w, s, used, acceptance


def ais_log_z(
    energy: Callable,
    base: Base,
    n_chains: int,
    n_temps: int,
    *,
    mala_steps: int = 1,
    step_size: float = 0.05,
    tune: bool = True,
    n_pilot: int = 16,
    target_accept: float = 0.6,
    bidirectional: bool = False,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> AISResult:
    """AIS estimate of log Z for p1 ∝ exp(−E(x)) on the support of ``base`` (see the module doc).

    ``n_temps`` intermediate temperatures on a sigmoid schedule, ``mala_steps`` MALA moves each.
    With ``tune`` a pilot AIS run of ``n_pilot`` chains adapts the step size (from ``step_size``)
    towards ``target_accept`` and the estimation run replays that per-temperature schedule;
    without it every move uses ``step_size``. ``energy`` is frozen (eval mode, no parameter grads).

    ``bidirectional`` (BDMC, Grosse, Ghahramani & Adams 2015) adds a reverse run: from the forward chains'
    final states, β goes back from 1 to 0 with the same kernels; its weights estimate Z0/Z1 = 1/Z without
    bias *when it starts from exact samples of p1*, so −logmeanexp(log w_rev) is then a stochastic upper
    bound on log Z, as the forward log Ẑ is a stochastic lower bound. The forward end states are only
    approximate samples, so the sandwich is approximate too: a large gap says neither end is to be trusted
    (the chains did not reach the model's modes); a small one is evidence, not proof, that both are close.
    """
    if n_chains < 2:
        raise ValueError(f"n_chains must be >= 2 for a standard error, got {n_chains}")
    betas = sigmoid_schedule(n_temps)
    steps = [step_size] * len(betas)
    with frozen(energy):
        if tune:
            _, _, steps, _ = _anneal(
                energy, base, n_pilot, betas, steps, mala_steps, generator, target_accept, progress, "ais pilot"
            )
        log_w, s, _, acceptance = _anneal(energy, base, n_chains, betas, steps, mala_steps, generator, None, progress, "ais")
        samples = base.to_data(s.u)[0].detach()
        reverse = None
        if bidirectional:
            log_w_rev, _, _, acc_rev = _anneal(energy, base, n_chains, betas[::-1], steps[::-1], mala_steps, generator,
                                               None, progress, "ais reverse", start=s)
            log_z_rev, stderr_rev, ess_rev = _summary(log_w_rev, -1.0)
            reverse = AISResult(log_z_rev, stderr_rev, log_w_rev.cpu(), ess_rev, acc_rev, samples)
    if not torch.isfinite(log_w).all() or (reverse is not None and not torch.isfinite(reverse.log_weights).all()):
        raise FloatingPointError("AIS produced non-finite log weights: the energy is non-finite on the base's support")
    log_z, stderr, ess = _summary(log_w, 1.0)
    return AISResult(log_z, stderr, log_w.cpu(), ess, acceptance, samples, reverse)


# ---------------------------------------------------------------------------------------------
# The suite: log Z on the data box, then test log-likelihood in nats and bits/dim
# ---------------------------------------------------------------------------------------------

PIXEL_SCALE_8BIT = 127.5  # x = k / 127.5 − 1 maps 8-bit values k ∈ [0, 255] onto [−1, 1]


@torch.no_grad()
def _energies(energy: Callable, x: Tensor, batch_size: int = 500) -> Tensor:
    with frozen(energy):
        return torch.cat([energy(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


OPTIONS = ("n_chains", "n_temps", "mala_steps", "bidirectional")  # ctx.options["likelihood"]


def resolve_options(ctx: EvalContext, **given) -> dict:
    """``n_chains`` × ``n_temps`` (default 100 × 500; 8 × 20 when ``ctx.quick``), ``mala_steps`` (1) and
    ``bidirectional`` (True), overridden by the keyword arguments, then by ``ctx.options["likelihood"]``."""
    opts = {"n_chains": 8 if ctx.quick else 100, "n_temps": 20 if ctx.quick else 500, "mala_steps": 1, "bidirectional": True}
    opts.update({k: v for k, v in given.items() if v is not None})
    for key in ctx.options.get("likelihood") or {}:
        if key not in OPTIONS:
            raise ValueError(f"unknown likelihood option '{key}'{closest(key, OPTIONS)}; available: {', '.join(OPTIONS)}")
    opts.update(ctx.options.get("likelihood") or {})
    for key in ("n_chains", "n_temps", "mala_steps"):
        if not isinstance(opts[key], int) or isinstance(opts[key], bool) or opts[key] < 1:
            raise ValueError(f"likelihood option {key} must be an integer >= 1, got {opts[key]!r}")
    if not isinstance(opts["bidirectional"], bool):
        raise ValueError(f"likelihood option bidirectional must be true or false, got {opts['bidirectional']!r}")
    return opts


def gaussian_yardstick(ctx: EvalContext) -> dict:
    """Test bits/dim of one Gaussian N(μ, Σ + ridge·I) fitted to the training images, the ridge chosen on
    held-out training images (``Gaussian.select_ridge``) from the variance of uniform dequantization noise
    up (without that floor a pixel that is constant in the training set, such as a border, would get
    unbounded density): the simplest density model, trained in seconds.
    As a density on R^D it puts mass outside the box [−1, 1]^D, so on the box it is sub-normalized and its
    bits/dim are an upper bound on those of the Gaussian truncated to the box. Also the AUROC of its log
    density as an OOD score on the ood suite's sets (the same images: ``ood_sets`` with ``ctx.seed``), the
    yardstick of the OOD-by-log-p(x) promise. Fitted once per evaluation (``ctx.shared``; the fit itself is
    ``training_gaussian``'s, shared with the inpainting suite): model and baseline read the same yardstick."""
    key = "likelihood_gaussian"
    if key not in ctx.shared:
        x_test = ctx.data.x_test
        d = math.prod(x_test.shape[1:])
        gaussian = training_ridged_gaussian(ctx)
        ridge = gaussian.ridge
        logp = gaussian.log_prob(x_test)
        n = min(ctx.n_ood, 200) if ctx.quick else ctx.n_ood
        sets = ood_sets(ctx.data, n, generator=torch.Generator().manual_seed(ctx.seed), extra=ctx.ood_extra)
        ood = {name: auroc(logp[:n].float(), gaussian.log_prob(x).float()) for name, x in sets.items()}
        ctx.shared[key] = {"bpd": -logp.mean().item() / (d * math.log(2)), "ridge": ridge, "ood_auroc": ood}
    return ctx.shared[key]


def suite_likelihood(ctx: EvalContext, *, n_chains: int | None = None, n_temps: int | None = None,
                     mala_steps: int | None = None, bidirectional: bool | None = None) -> dict:
    """log Z by AIS from the uniform box (options: ``resolve_options``), then the test log-likelihood
    log p(x) = −E(x) − log Z, beside a Gaussian fitted to the training images (``gaussian_yardstick``).
    A tilted model (``train.objective=tilt``, ``base`` = "gaussian"): AIS from its Gaussian base N, and
    log p(x) = log N(x) − E(x) − log Z on R^D (``log_z`` is then the tilt's, log E_N[e^{−E}]).

    Units. ``logp_test`` (nats, mean over the test set) and ``bpd`` = −mean log p(x) / (D ln 2) are
    for the *continuous* density of x on [−1, 1]^D, the model's own data space (the uniform density
    scores bpd = 1; lower is better). ``bpd_8bit`` = bpd + log2(127.5) is the same density expressed
    for k = 127.5 (x + 1) ∈ [0, 255], the 8-bit pixel scale of published bits/dim (the density of k is
    p(x) / 127.5^D). It is a change of units, not a discrete likelihood: the test pixels are not
    dequantized (and the digits have 17 levels, not 256), so it is not comparable to published
    numbers as a bound.
    Precision. ``*_stderr`` propagate the AIS standard error of log Z (the test-set sampling error is
    separate: ``logp_test_std`` is the spread over test images). With ``bidirectional`` the reverse run
    gives ``log_z_reverse`` (an upper estimate; see ``ais_log_z``) and ``bpd_reverse``: the test bits/dim
    lie in [``bpd``, ``bpd_reverse``] as far as the sandwich holds, and ``bpd_gap`` is its width, the
    precision the estimate states. ``bpd_gaussian`` is the yardstick; ``beats_gaussian`` compares it
    with the pessimistic end (the larger of ``bpd`` and ``bpd_reverse``); ``gaussian_ood_auroc`` is its log density's
    AUROC per OOD set (compare with the ood suite's ``ood.SET.logp``). Writes ``{prefix}likelihood_ais_samples.png``.
    """
    opts = resolve_options(ctx, n_chains=n_chains, n_temps=n_temps, mala_steps=mala_steps, bidirectional=bidirectional)
    x_test = ctx.data.x_test
    d = math.prod(ctx.model.input_shape)
    tilt = density_base(ctx)
    base = (UniformBox(ctx.model.input_shape, device=x_test.device, dtype=x_test.dtype) if tilt is None
            else WhitenedGaussian(tuple(ctx.model.input_shape), tilt, dtype=x_test.dtype))
    ais = ais_log_z(ctx.energy, base, opts["n_chains"], opts["n_temps"], mala_steps=opts["mala_steps"],
                    bidirectional=opts["bidirectional"], generator=ctx.generator(30), progress=ctx.progress)
    neg_energy = -_energies(ctx.energy, x_test).double()
    if tilt is not None:  # the unnormalized log density of a tilted model: log N(x) − E(x)
        neg_energy = neg_energy + tilt.log_prob(x_test).to(neg_energy.device)
    logp = neg_energy - ais.log_z  # (N,) nats
    per_dim = d * math.log(2)
    bpd = -logp.mean().item() / per_dim
    save_grid(ais.samples[:64], ctx.out_dir / f"{ctx.prefix}likelihood_ais_samples.png")
    out = {**opts, "base": "uniform" if tilt is None else "gaussian",
           "log_z": ais.log_z, "log_z_stderr": ais.stderr, "ess": ais.ess, "acceptance": ais.acceptance,
           "logp_test": logp.mean().item(), "logp_test_stderr": ais.stderr, "logp_test_std": logp.std().item(),
           "bpd": bpd, "bpd_8bit": bpd + math.log2(PIXEL_SCALE_8BIT), "bpd_stderr": ais.stderr / per_dim}
    pessimistic = bpd
    if ais.reverse is not None:
        r = ais.reverse
        bpd_reverse = -(neg_energy.mean().item() - r.log_z) / per_dim
        pessimistic = max(bpd, bpd_reverse)  # the reverse estimate is the upper one in expectation, not in every run
        out.update({"log_z_reverse": r.log_z, "log_z_reverse_stderr": r.stderr, "ess_reverse": r.ess,
                    "acceptance_reverse": r.acceptance, "bpd_reverse": bpd_reverse,
                    "bpd_gap": bpd_reverse - bpd, "log_z_gap": r.log_z - ais.log_z})
    gauss = gaussian_yardstick(ctx)
    out.update({"bpd_gaussian": gauss["bpd"], "gaussian_ridge": gauss["ridge"], "beats_gaussian": pessimistic < gauss["bpd"],
                "gaussian_ood_auroc": gauss["ood_auroc"]})
    return {"likelihood": out}
