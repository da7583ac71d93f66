"""Fill in missing data: conditional SGLD over the missing pixels only (JEM as a generative model).

Mask convention: ``mask`` is a bool tensor shaped like the images (N, C, H, W), **True = observed**.
The missing part z is sampled from the clamped energy

    E_obs(z) = E(m ⊙ x_obs + (1 − m) ⊙ z),

so ∇_z E_obs vanishes on observed pixels and the observed values are put back exactly
(``torch.where``) whenever z is composed into an image: they never change. Any sampler with the
jemkit signature runs on E_obs unchanged (here: the checkpoint's training sampler, more steps).

Errors are on the [0, 1] pixel scale p = (x + 1) / 2, over the missing pixels only, pooled over
all images:  MSE = mean_missing (p̂ − p)²,  PSNR = 10 · log10(1 / MSE)  (peak value 1).

Two yardsticks are reported beside the model: the per-pixel training mean, and the conditional mean of
one Gaussian fitted to the training images, E[x_m | x_o] = μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o) (the best linear
fill: what "Gaussian/PCA inpainting" gives). Chains start from U(−1, 1) (JEM's init), the mean fill, or
the Gaussian fill (``init``); from a fill, the energy model's chains refine what the yardstick gives.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..images import save_grid
from ..sampling import sampler_config, sampler_from_record, uniform_init
from ..utils import closest
from .context import EvalContext
from .gaussian import Gaussian, training_gaussian

Mask = Callable[..., Tensor]


def lower_half_mask(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Observe the upper half of every image (rows < H/2); the lower half is missing. (``generator``:
    unused, every mask in ``MASKS`` takes one.)"""
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[..., x.shape[-2] // 2 :, :] = False
    return mask


def random_pixel_mask(x: Tensor, generator: torch.Generator | None = None, missing: float = 0.5) -> Tensor:
    """Each pixel (all its channels together) is missing with probability ``missing``."""
    n, c, h, w = x.shape
    u = torch.rand((n, 1, h, w), generator=generator, device=x.device)
    return (u >= missing).expand(n, c, h, w).contiguous()


MASKS: dict[str, Mask] = {"lower_half": lower_half_mask, "random_pixels": random_pixel_mask}
INITS = ("gaussian", "mean", "uniform")  # where the chains over the missing pixels start


class GaussianFill(Gaussian):
    """Inpainting under one Gaussian N(μ, Σ) of the training images: the missing pixels get their conditional
    mean μ_m + Σ_mo (Σ_oo + δI)⁻¹ (x_o − μ_o), clipped to [−1, 1] (δ: a small ridge for constant border pixels)."""

    def __init__(self, mean: Tensor, cov: Tensor, ridge: float = 1e-3):
        super().__init__(mean, cov)
        self.ridge = ridge

    def __call__(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` with its missing pixels (``mask`` False) replaced by their conditional mean; one solve per
        distinct mask."""
        flat, seen = x.reshape(len(x), -1).double().cpu(), mask.reshape(len(x), -1).cpu()
        out = flat.clone()
        patterns, which = torch.unique(seen, dim=0, return_inverse=True)
        for k, o in enumerate(patterns):
            rows, m = (which == k).nonzero().squeeze(1), ~o
            if not m.any():
                continue
            s_oo = self.cov[o][:, o] + self.ridge * torch.eye(int(o.sum()), dtype=torch.float64)
            gain = torch.linalg.solve(s_oo, self.cov[o][:, m]).T  # Σ_mo Σ_oo⁻¹: (|m|, |o|)
            out[rows[:, None], m.nonzero().squeeze(1)] = self.mean[m] + (flat[rows][:, o] - self.mean[o]) @ gain.T
        return out.clamp_(-1, 1).to(x.dtype).to(x.device).view_as(x)


class ClampedEnergy(nn.Module):
    """E_obs(z) = E(m ⊙ x_obs + (1 − m) ⊙ z): the energy of the missing pixels z given the observed ones."""

    def __init__(self, energy: Callable, x_obs: Tensor, mask: Tensor):
        super().__init__()
        if mask.shape != x_obs.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(x_obs.shape)}, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        self.energy, self.x_obs, self.mask = energy, x_obs.detach(), mask

    def compose(self, z: Tensor) -> Tensor:
        """Observed pixels from x_obs (exactly), missing ones from z."""
        return torch.where(self.mask, self.x_obs, z)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.energy(self.compose(z), y)


def inpaint(
    energy: Callable, x_obs: Tensor, mask: Tensor, z0: Tensor, sampler: Callable, *, generator: torch.Generator | None = None
) -> Tensor:
    """Run ``sampler`` on the clamped energy from the fill ``z0`` (its observed entries are ignored);
    return the completed images, missing pixels clipped to the data range [−1, 1]."""
    clamped = ClampedEnergy(energy, x_obs, mask)
    z = sampler(clamped, z0, generator=generator)
    return clamped.compose(z.clamp(-1.0, 1.0))


def masked_errors(x_hat: Tensor, x: Tensor, mask: Tensor) -> dict[str, float]:
    """MSE and PSNR on the [0, 1] scale over the missing pixels (mask False), pooled over images."""
    missing = ~mask
    if not missing.any():
        raise ValueError("the mask hides no pixel: nothing to inpaint")
    mse = ((x_hat - x)[missing] / 2).pow(2).mean().item()  # ((x̂+1)/2 − (x+1)/2)² = (x̂ − x)² / 4
    return {"mse": mse, "psnr": 10 * math.log10(1.0 / mse) if mse > 0 else math.inf}


def fill(
    energy: Callable, x: Tensor, mask: Tensor, sampler: Callable, n_samples: int, *, generator: torch.Generator | None = None,
    start: Tensor | None = None,
) -> Tensor:
    """``n_samples`` completions of every image, each chain started from ``start`` (N, C, H, W) or, without it,
    from U(−1, 1): (n_samples, N, C, H, W)."""
    xr, mr = x.repeat(n_samples, 1, 1, 1), mask.repeat(n_samples, 1, 1, 1)  # (K·N, C, H, W), sample-major
    if start is None:
        z0 = uniform_init(len(xr), tuple(x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
    else:
        z0 = start.repeat(n_samples, 1, 1, 1)
    return inpaint(energy, xr, mr, z0, sampler, generator=generator).view(n_samples, *x.shape)


def fill_batches(energy: Callable, x: Tensor, mask: Tensor, sampler: Callable, n_samples: int, batch_size: int, *,
                 generator: torch.Generator | None = None, progress: bool = False, desc: str = "",
                 start: Tensor | None = None) -> Tensor:
    """``fill`` over ``x`` (and ``start``) in batches of ``batch_size`` images: (n_samples, N, C, H, W)."""
    batches = tqdm(range(0, len(x), batch_size), desc=desc, disable=not progress, leave=False)
    return torch.cat([fill(energy, x[j : j + batch_size], mask[j : j + batch_size], sampler, n_samples, generator=generator,
                           start=None if start is None else start[j : j + batch_size])
                      for j in batches], dim=1)


def fill_errors(x: Tensor, mask: Tensor, fills: Tensor, yardsticks: dict[str, Tensor]) -> dict[str, float]:
    """``masked_errors`` of the mean of the completions ``fills`` (K, N, C, H, W) as ``mse``/``psnr``, of the
    first completion as ``sample_*``, and of each yardstick fill (N, C, H, W) as ``<name>_mse``/``<name>_psnr``."""
    sample, posterior_mean = masked_errors(fills[0], x, mask), masked_errors(fills.mean(0), x, mask)
    out = {**posterior_mean, "sample_mse": sample["mse"], "sample_psnr": sample["psnr"]}
    for name, filled in yardsticks.items():
        err = masked_errors(torch.where(mask, x, filled), x, mask)
        out[f"{name}_mse"], out[f"{name}_psnr"] = err["mse"], err["psnr"]
    out["beats_mean_fill"] = out["mse"] < out["mean_fill_mse"]
    return out


def resolve_options(ctx: EvalContext, **given) -> dict:
    """``n_images`` (500; 16 quick), ``steps``, ``n_samples`` (4; 2 quick), ``batch_size`` (100), ``init``
    (``gaussian``), overridden by ``given`` (the suite's arguments) and ``ctx.options["inpainting"]``. ``steps``
    defaults to the checkpoint's training sampler's when chains start from a fill (near the data, as its training
    chains did: on fmnist-jem-fast, 3 steps lower the Gaussian fill's error and 20 raise it), to 100 from U(−1, 1)
    (5 quick either way)."""
    opts = {"n_images": 16 if ctx.quick else 500, "steps": None, "n_samples": 2 if ctx.quick else 4,
            "batch_size": 100, "init": "gaussian"}
    extra = dict(ctx.options.get("inpainting") or {})
    for key in extra:
        if key not in opts:
            raise ValueError(f"unknown inpainting option '{key}'{closest(key, opts)}; available: {', '.join(opts)}")
    opts.update({k: v for k, v in given.items() if v is not None}, **extra)
    if opts["init"] not in INITS:
        raise ValueError(f"inpainting init must be one of {', '.join(INITS)}, got {opts['init']!r}")
    if opts["steps"] is None:
        opts["steps"] = 5 if ctx.quick else 100 if opts["init"] == "uniform" else sampler_config(ctx.model.record).steps
    for key in ("n_images", "n_samples", "batch_size"):
        if not isinstance(opts[key], int) or opts[key] < 1:
            raise ValueError(f"inpainting option {key} must be an integer >= 1, got {opts[key]!r}")
    if not isinstance(opts["steps"], int) or opts["steps"] < 0:
        raise ValueError(f"inpainting option steps must be an integer >= 0, got {opts['steps']!r}")
    return opts


def suite_inpainting(
    ctx: EvalContext,
    *,
    n_images: int | None = None,
    steps: int | None = None,
    n_samples: int | None = None,
    batch_size: int | None = None,
    n_show: int = 8,
) -> dict:
    """Inpaint the first ``n_images`` test images under every mask in ``MASKS``; compare with the yardsticks.

    Each image gets ``n_samples`` completions (default 4; 2 when ``ctx.quick``), each chain starting from
    ``init`` — ``gaussian`` (default: the Gaussian fill), ``mean`` (the training mean) or ``uniform`` (U(−1, 1),
    JEM's chain init) — and running the checkpoint's sampler for ``steps`` (default: its training length from a
    fill, 100 from U(−1, 1); 5 when ``ctx.quick``).
    Options also come from ``ctx.options["inpainting"]`` (``jemkit eval --option inpainting.init=uniform``).
    Reported per mask: ``mse``/``psnr`` of the mean of the completions (an estimate of E[x_missing |
    x_observed], the MSE-optimal fill), ``sample_mse``/``sample_psnr`` of one completion, ``mean_fill_*`` for
    the per-pixel training mean and ``gaussian_fill_*`` for the Gaussian fill, and ``beats_mean_fill``. A single
    exact posterior sample has twice the MSE of the posterior mean, so compare the mean with the yardsticks.
    Writes ``{prefix}inpainting.png``: per mask, rows masked (missing = grey) / one completion / mean of
    completions / true.
    """
    o = resolve_options(ctx, n_images=n_images, steps=steps, n_samples=n_samples, batch_size=batch_size)
    x = ctx.data.x_test[: o["n_images"]]
    mean_fill = ctx.data.x_train.mean(0, keepdim=True).expand_as(x)
    fitted = training_gaussian(ctx)  # fitted once per evaluation, model and baseline
    gaussian = GaussianFill(fitted.mean, fitted.cov)
    sampler = sampler_from_record(ctx.model.record, steps=o["steps"])  # the training sampler, ``steps`` long
    result: dict = {"steps": o["steps"], "n_images": len(x), "n_samples": o["n_samples"], "init": o["init"]}
    rows: list[Tensor] = []
    k = min(n_show, len(x))
    for i, (name, make_mask) in enumerate(MASKS.items()):
        gen = ctx.generator(10 + i)
        mask = make_mask(x, generator=gen)
        yardsticks = {"mean_fill": mean_fill, "gaussian_fill": gaussian(x, mask)}
        start = {"gaussian": yardsticks["gaussian_fill"], "mean": mean_fill, "uniform": None}[o["init"]]
        fills = fill_batches(ctx.energy, x, mask, sampler, o["n_samples"], o["batch_size"], generator=gen,
                             progress=ctx.progress, desc=f"inpainting {name} ({ctx.label})", start=start)
        result[name] = fill_errors(x, mask, fills, yardsticks)
        rows += [torch.where(mask[:k], x[:k], torch.zeros_like(x[:k])), fills[0, :k], fills.mean(0)[:k], x[:k]]
    save_grid(torch.cat(rows), ctx.out_dir / f"{ctx.prefix}inpainting.png", nrow=k)
    return {"inpainting": result}
