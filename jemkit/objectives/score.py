"""Score matching: fit a score s(x) ≈ ∇ₓ log p(x) without the normalizing constant.

Every objective here takes a ``score_fn(x, sigma) -> Tensor like x``: a noise-conditional score
network, or an energy model through ``EnergyScore`` (s = −∇ₓE). ``sigma`` is None or a tensor of
shape (B,), one noise level per example. Losses sum over the data dimensions and average over the batch.

  exact SM     (Hyvärinen 2005)          E[ tr ∇ₓs(x) + ½‖s(x)‖² ]
  sliced SM    (Song et al. 2019)        E_v E[ vᵀ∇ₓ(vᵀs(x)) + ½(vᵀs(x))² ]   (VR: ½‖s(x)‖² for the last term)
  denoising SM (Vincent 2011)            ½ E‖s(x + σz, σ) + z/σ‖²             (weighted by σ²: ½ E‖σ s + z‖²)
  NCSN         (Song & Ermon 2019)       denoising SM with σ drawn per example from a geometric sequence, λ(σ) = σ²
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .output import LossOutput

ScoreFn = Callable[[Tensor, Tensor | None], Tensor]


class EnergyScore(nn.Module):
    """An energy model as a score function: s(x) = −∇ₓE(x), with ``create_graph`` so the score is
    differentiable in θ (training) and in x (sliced/exact SM). ``sigma`` is ignored: an energy's
    score does not depend on a noise level. A module, so samplers can freeze and restore it.
    """

    def __init__(self, energy, create_graph: bool = True):
        super().__init__()
        self.energy, self.create_graph = energy, create_graph

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(x).sum(), x, create_graph=self.create_graph)
        return -grad


def _per_example(sigma: float | Tensor, x: Tensor) -> Tensor:
    """σ as a (B,) tensor on x's device and dtype."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a number or have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    if not (sigma > 0).all():
        raise ValueError("every sigma must be > 0")
    return sigma


def _check_score(s: Tensor, x: Tensor) -> Tensor:
    if s.shape != x.shape:
        raise ValueError(f"score_fn must return a tensor shaped like its input {tuple(x.shape)}, got {tuple(s.shape)}")
    return s


def _bcast(v: Tensor, x: Tensor) -> Tensor:
    """(B,) → (B, 1, …, 1) to broadcast against x."""
    return v.view(-1, *([1] * (x.dim() - 1)))


def denoising_score_matching(
    score_fn: ScoreFn,
    x: Tensor,
    sigma: float | Tensor,
    *,
    weighted: bool = True,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """Denoising score matching (Vincent 2011): x̃ = x + σz, z ~ N(0, I); the score of the
    Gaussian kernel is ∇ log q(x̃|x) = −z/σ, so

        L = ½ E‖s(x̃, σ) + z/σ‖²              (unweighted)
        L = ½ E‖σ s(x̃, σ) + z‖²              (``weighted``: λ(σ) = σ², Song & Ermon 2019)

    Its minimizer is the score of the smoothed data p_σ = p ∗ N(0, σ²I). ``sigma`` is a number or
    one value per example (B,). Stats: ``score_norm`` = mean ‖σ·s(x̃)‖ (≈ √D at the optimum for small σ).
    """
    sigma = _per_example(sigma, x)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    s_b = _bcast(sigma, x)
    x_noisy = x.detach() + s_b * z
    s = _check_score(score_fn(x_noisy, sigma), x)
    per_example = 0.5 * (s_b * s + z).flatten(1).pow(2).sum(1)  # ½‖σ s + z‖², (B,)
    if not weighted:
        per_example = per_example / sigma.pow(2)
    stats = {"score_norm": (s_b * s).detach().flatten(1).norm(dim=1).mean()}
    return LossOutput(per_example.mean(), stats)


def ncsn_loss(
    score_fn: ScoreFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """NCSN's multi-noise objective (Song & Ermon 2019, eq. 6): one σ per example drawn uniformly
    from ``sigmas`` (the geometric sequence σ_1 > … > σ_L), then σ²-weighted denoising score matching,
    (1/L) Σ_i σ_i² · ½ E‖s(x̃, σ_i) + (x̃ − x)/σ_i²‖² in expectation. Stats as ``denoising_score_matching``.
    """
    sigmas = torch.as_tensor(sigmas, dtype=x.dtype).to(x.device)
    if sigmas.dim() != 1 or len(sigmas) == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {tuple(sigmas.shape)}")
    idx = torch.randint(len(sigmas), (x.shape[0],), generator=generator, device=x.device)
    return denoising_score_matching(score_fn, x, sigmas[idx], weighted=True, generator=generator)


def sliced_score_matching(
    score_fn: ScoreFn,
    x: Tensor,
    n_projections: int = 1,
    *,
    variance_reduced: bool = False,
    sigma: float | Tensor | None = None,
    projection: str = "gaussian",
    generator: torch.Generator | None = None,
) -> LossOutput:
    """Sliced score matching (Song, Garg, Shi & Ermon 2019), an unbiased estimate of exact SM that
    needs one Jacobian-vector product per projection v (E[vvᵀ] = I) instead of D:

        L = E_v E_x[ vᵀ ∇ₓ(vᵀ s(x)) + ½ (vᵀ s(x))² ]           (SSM)
        L = E_v E_x[ vᵀ ∇ₓ(vᵀ s(x)) ] + ½ E_x ‖s(x)‖²          (SSM-VR, ``variance_reduced``)

    ``projection``: ``gaussian`` (v ~ N(0, I)) or ``rademacher`` (v ∈ {±1}^D). ``sigma`` is passed
    through to ``score_fn`` (a noise-conditional net at a fixed level). Stats: ``score_norm`` = mean ‖s(x)‖.
    """
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    if projection not in ("gaussian", "rademacher"):
        raise ValueError(f"projection must be 'gaussian' or 'rademacher', got '{projection}'")
    b = x.shape[0]
    xs = x.detach().repeat(n_projections, *([1] * (x.dim() - 1))).requires_grad_(True)  # (M·B, …)
    sig = None if sigma is None else _per_example(sigma, x).repeat(n_projections)
    v = torch.randn(xs.shape, generator=generator, device=x.device, dtype=x.dtype)
    if projection == "rademacher":
        v = v.sign()
    with torch.enable_grad():
        s = _check_score(score_fn(xs, sig), xs)
        sv = (s * v).flatten(1).sum(1)  # vᵀs, (M·B,)
        (jvp,) = torch.autograd.grad(sv.sum(), xs, create_graph=True)  # ∇ₓ(vᵀs)
    trace = (jvp * v).flatten(1).sum(1)  # vᵀ ∇ₓ(vᵀs), (M·B,)
    norm2 = s.flatten(1).pow(2).sum(1) if variance_reduced else sv.pow(2)
    loss = (trace + 0.5 * norm2).mean()
    return LossOutput(loss, {"score_norm": s[:b].detach().flatten(1).norm(dim=1).mean()})


def exact_score_matching(score_fn: ScoreFn, x: Tensor, *, sigma: float | Tensor | None = None) -> LossOutput:
    """Exact score matching (Hyvärinen 2005): E[ tr ∇ₓs(x) + ½‖s(x)‖² ], with the trace of the
    Jacobian from D backward passes — for tiny D only (tests, 2-D toys)."""
    xs = x.detach().requires_grad_(True)
    sig = None if sigma is None else _per_example(sigma, x)
    with torch.enable_grad():
        s = _check_score(score_fn(xs, sig), xs)
        flat = s.flatten(1)  # (B, D)
        trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(flat.shape[1]):
            (g,) = torch.autograd.grad(flat[:, i].sum(), xs, create_graph=True)
            trace = trace + g.flatten(1)[:, i]
    loss = (trace + 0.5 * flat.pow(2).sum(1)).mean()
    return LossOutput(loss, {"score_norm": flat.detach().norm(dim=1).mean()})
