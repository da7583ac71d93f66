"""Fill in missing data: conditional SGLD over the missing pixels only (JEM as a generative model).

Mask convention: ``mask`` is a bool tensor shaped like the images (N, C, H, W), **True = observed**.
The missing part z is sampled from the clamped energy

    E_obs(z) = E(m ⊙ x_obs + (1 − m) ⊙ z),

so ∇_z E_obs vanishes on observed pixels and the observed values are put back exactly
(``torch.where``) whenever z is composed into an image: they never change. Any sampler with the
jemkit signature runs on E_obs unchanged (here: the checkpoint's training sampler, more steps).

Errors are on the [0, 1] pixel scale p = (x + 1) / 2, over the missing pixels only, pooled over
all images:  MSE = mean_missing (p̂ − p)²,  PSNR = 10 · log10(1 / MSE)  (peak value 1).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..images import save_grid
from ..sampling import sampler_from_record, uniform_init
from .context import EvalContext

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
    energy: Callable, x: Tensor, mask: Tensor, sampler: Callable, n_samples: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """``n_samples`` completions of every image, each chain started from U(−1, 1): (n_samples, N, C, H, W)."""
    xr, mr = x.repeat(n_samples, 1, 1, 1), mask.repeat(n_samples, 1, 1, 1)  # (K·N, C, H, W), sample-major
    z0 = uniform_init(len(xr), tuple(x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
    return inpaint(energy, xr, mr, z0, sampler, generator=generator).view(n_samples, *x.shape)


def fill_batches(energy: Callable, x: Tensor, mask: Tensor, sampler: Callable, n_samples: int, batch_size: int, *,
                 generator: torch.Generator | None = None, progress: bool = False, desc: str = "") -> Tensor:
    """``fill`` over ``x`` in batches of ``batch_size`` images: (n_samples, N, C, H, W)."""
    batches = tqdm(range(0, len(x), batch_size), desc=desc, disable=not progress, leave=False)
    return torch.cat([fill(energy, x[j : j + batch_size], mask[j : j + batch_size], sampler, n_samples, generator=generator)
                      for j in batches], dim=1)


def fill_errors(x: Tensor, mask: Tensor, fills: Tensor, mean_fill: Tensor) -> dict[str, float]:
    """``masked_errors`` of the mean of the completions ``fills`` (K, N, C, H, W) as ``mse``/``psnr``, of the
    first completion as ``sample_*``, and of ``mean_fill`` as ``mean_fill_*``."""
    sample, posterior_mean, mean_base = (masked_errors(f, x, mask) for f in (fills[0], fills.mean(0), torch.where(mask, x, mean_fill)))
    return {**posterior_mean, "sample_mse": sample["mse"], "sample_psnr": sample["psnr"],
            "mean_fill_mse": mean_base["mse"], "mean_fill_psnr": mean_base["psnr"]}


def suite_inpainting(
    ctx: EvalContext,
    *,
    n_images: int | None = None,
    steps: int | None = None,
    n_samples: int | None = None,
    batch_size: int = 100,
    n_show: int = 8,
) -> dict:
    """Inpaint the first ``n_images`` test images under every mask in ``MASKS``; compare with mean fill.

    Each image gets ``n_samples`` completions (default 4; 2 when ``ctx.quick``), each chain starting
    from U(−1, 1) — JEM's chain init — and running the checkpoint's sampler for ``steps`` (default
    100; 5 when ``ctx.quick``). Reported per mask: ``mse``/``psnr`` of the mean of the completions
    (an estimate of E[x_missing | x_observed], the MSE-optimal fill), ``sample_mse``/``sample_psnr``
    of one completion, and ``mean_fill_*`` for the per-pixel training mean. A single exact posterior
    sample has twice the MSE of the posterior mean, so compare the mean with the mean fill.
    Writes ``{prefix}inpainting.png``: per mask, rows masked (missing = grey) / one completion /
    mean of completions / true.
    """
    n_images = n_images or (16 if ctx.quick else 500)
    steps = steps or (5 if ctx.quick else 100)
    n_samples = n_samples or (2 if ctx.quick else 4)
    x = ctx.data.x_test[:n_images]
    mean_fill = ctx.data.x_train.mean(0, keepdim=True).expand_as(x)
    sampler = sampler_from_record(ctx.model.record, steps=steps)  # the training sampler, ``steps`` long
    result: dict = {"steps": steps, "n_images": len(x), "n_samples": n_samples}
    rows: list[Tensor] = []
    k = min(n_show, len(x))
    for i, (name, make_mask) in enumerate(MASKS.items()):
        gen = ctx.generator(10 + i)
        mask = make_mask(x, generator=gen)
        fills = fill_batches(ctx.energy, x, mask, sampler, n_samples, batch_size, generator=gen, progress=ctx.progress,
                             desc=f"inpainting {name} ({ctx.label})")
        result[name] = fill_errors(x, mask, fills, mean_fill)
        rows += [torch.where(mask[:k], x[:k], torch.zeros_like(x[:k])), fills[0, :k], fills.mean(0)[:k], x[:k]]
    save_grid(torch.cat(rows), ctx.out_dir / f"{ctx.prefix}inpainting.png", nrow=k)
    return {"inpainting": result}
