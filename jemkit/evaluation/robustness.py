"""Adversarial robustness: PGD accuracy-vs-ε curves, bare and behind JEM's purification defense.

Threat model and conventions:

* **ε is in [0, 1] pixel units** (8/255 means what it means in the literature). jemkit models
  read [−1, 1], so a perturbation of ε pixels is 2ε in model-input units, for L∞ and L2 alike.
  Attacks run through ``PixelSpace``, which maps [0, 1] → [−1, 1] (x·2 − 1) in front of the model,
  so torchattacks sees the [0, 1] images it expects and clamps adversarial images to the data range.
* **Attacks**: torchattacks 3.5.1 ``PGD`` (L∞) and ``PGDL2`` (L2), ``random_start=True``, step
  α = 2.5·ε/steps (Madry et al. 2018), maximizing cross-entropy on ``NormalizedLogits``, which cannot
  saturate into exact-zero gradients (``zero_gradient_fraction`` reports them at the clean inputs).
* **Curves**: ``restarts`` random-start runs per ε; an example counts as robust at ε only if it
  survives every restart at every ε' ≤ ε (a running minimum per example over the ascending ε list),
  so every curve is non-increasing by construction, and ``monotone`` re-checks it. ε = 0 is always on
  the list and is evaluated without attacking (PGDL2 divides 0/0 there): it is clean accuracy, and
  ``eps0_is_clean`` checks it against the model's own predictions on [−1, 1] inputs.
* **Defense** ("purify then classify", JEM §5.3, its ``attack_model.py``): N copies of the input
  get N(0, σ²) noise (σ in [−1, 1] model units, default 0.03 as JEM), K SGLD steps on the marginal
  energy E(x) with the checkpoint's training SGLD settings (step size, noise, and JEM++'s gradient
  clip and [−1, 1] clamp when it trained with them), and the classifier's **logits are averaged**
  over the copies (as JEM), giving one prediction per input.
* **Seeing through the defense** (EOT): the attacked model draws fresh copy and SGLD noise at every
  forward and averages the logits of ``copies × eot`` copies, so each PGD gradient is that of a
  Monte-Carlo estimate of the defended decision function E_T[f(T(x))]. Through the K SGLD steps it is
  - ``bpda``: straight-through, x + (purify(x) − x).detach(): Jacobian of purification ≈ I (as JEM);
  - ``full``: exact, backprop through every step (``sgld(..., create_graph=True)``); cost and
    memory grow with K, so keep K small.
  Adversarial examples are then judged by a separate defended model with ``copies`` copies and
  its own randomness.
* **The model's purifier on the baseline** (``cross_purify``, on by default): purification is a
  defense anyone can bolt onto any classifier, so when a baseline is evaluated beside the model, the
  baseline is also defended by the *model's* purifier (the model's energy, SGLD settings, steps, copies
  and noise; the baseline classifies the purified copies) and attacked the same ways. Its curves are
  ``bpda_by_model`` / ``full_by_model``: the gap between the model's ``bpda`` and the baseline's
  ``bpda_by_model`` is what the energy model adds beyond the purifier.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..energy import ClassifierEnergy
from ..sampling import sampler_config, sgld
from ..utils import closest, frozen
from .context import EvalContext

INSTALL_HINT = "pip install --no-deps torchattacks==3.5.1"
ATTACKS = {"linf": "PGD", "l2": "PGDL2"}  # norm → torchattacks class

# ε in [0, 1] pixel units, per dataset; others get the CIFAR-style lists.
EPS_PRESETS = {
    "digits": {"linf": (0.0, 0.05, 0.1, 0.2, 0.3), "l2": (0.0, 0.25, 0.5, 1.0, 2.0)},
    "fashion-mnist": {"linf": (0.0, 0.02, 0.05, 0.1, 0.2), "l2": (0.0, 0.5, 1.0, 2.0, 3.0)},
}
DEFAULT_EPS = {"linf": (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255), "l2": (0.0, 0.25, 0.5, 1.0)}


def import_torchattacks():
    try:
        import torchattacks
    except ImportError as err:
        raise ImportError(f"the robustness suite needs torchattacks: {INSTALL_HINT}") from err
    return torchattacks


# ---------------------------------------------------------------- options


@dataclass
class RobustnessOptions:
    linf_eps: tuple[float, ...] | None = None  # [0, 1] pixel units; None: the dataset's preset
    l2_eps: tuple[float, ...] | None = None
    n_bare: int = 500  # test examples attacked on the bare classifier (a seeded random subset)
    n_defended: int = 100  # the first n_defended of those, attacked through the defense
    pgd_steps_bare: int = 20
    pgd_steps_defended: int = 10
    restarts: int = 2
    defense_gradients: tuple[str, ...] = ("bpda", "full")  # attacks on the defense; () for bare only
    purify_steps: int = 5  # K
    copies: int = 4  # N
    copy_noise: float = 0.03  # σ, [−1, 1] model units
    eot: int = 2  # the attacker averages over copies × eot draws
    sgld_step_size: float | None = None  # None (these four): the checkpoint's training sampler
    sgld_noise: float | None = None
    sgld_grad_clip: float | None = None  # JEM++'s per-coordinate clip of ∇ₓE; 0 = off
    sgld_clamp: bool | None = None  # keep purified inputs in [−1, 1] after every step
    batch_size: int = 250  # bare; the defended batch is batch_size // (copies · eot), at least 1
    cross_purify: bool = True  # the baseline also behind the model's purifier (curves "<gradient>_by_model")


QUICK = {"n_bare": 32, "n_defended": 16, "pgd_steps_bare": 3, "pgd_steps_defended": 3, "restarts": 1,
         "purify_steps": 2, "copies": 2, "eot": 1}


def resolve_options(ctx: EvalContext, overrides: dict | None = None) -> RobustnessOptions:
    """Full-size defaults (or ``QUICK`` if ``ctx.quick``), then ``overrides``; ε lists sorted, with 0."""
    names = {f.name for f in dataclasses.fields(RobustnessOptions)}
    for key in overrides or {}:
        if key not in names:
            raise ValueError(f"unknown robustness option '{key}'{closest(key, names)}; available: {', '.join(sorted(names))}")
    opts = RobustnessOptions(**{**(QUICK if ctx.quick else {}), **(overrides or {})})
    for name in ("pgd_steps_bare", "pgd_steps_defended", "restarts", "copies", "eot", "batch_size"):
        if getattr(opts, name) < 1:
            raise ValueError(f"robustness option {name} must be >= 1, got {getattr(opts, name)}")
    if opts.purify_steps < 0 or opts.copy_noise < 0:
        raise ValueError(f"purify_steps and copy_noise must be >= 0, got {opts.purify_steps} and {opts.copy_noise}")
    opts.defense_gradients = tuple(opts.defense_gradients)
    for g in opts.defense_gradients:
        if g not in GRADIENTS:
            raise ValueError(f"unknown defense gradient '{g}'{closest(g, GRADIENTS)}; choose from {sorted(GRADIENTS)}")
    presets = EPS_PRESETS.get(ctx.data.name, DEFAULT_EPS)
    for norm in ATTACKS:
        given = getattr(opts, f"{norm}_eps")
        eps = presets[norm] if given is None else given
        if given is None and ctx.quick:  # first, middle and last of the preset
            eps = (eps[0], eps[len(eps) // 2], eps[-1])
        if any(e < 0 for e in eps):
            raise ValueError(f"{norm}_eps must be >= 0, got {list(eps)}")
        setattr(opts, f"{norm}_eps", tuple(sorted({0.0, *map(float, eps)})))
    sampler = sampler_config(ctx.model.record)
    if opts.sgld_step_size is None:
        opts.sgld_step_size = float(sampler.step_size)
    if opts.sgld_noise is None:  # a Langevin/MALA-trained checkpoint: its coupled noise √(2η)
        opts.sgld_noise = math.sqrt(2 * opts.sgld_step_size) if sampler.name != "sgld" else float(sampler.noise)
    if opts.sgld_grad_clip is None:
        opts.sgld_grad_clip = float(sampler.grad_clip)
    if opts.sgld_clamp is None:
        opts.sgld_clamp = bool(sampler.clamp)
    return opts


# ---------------------------------------------------------------- the defense


def purify_bpda(energy: ClassifierEnergy, x: Tensor, **sgld_options) -> Tensor:
    """K SGLD steps with a straight-through gradient: value purify(x), Jacobian I (BPDA)."""
    return x + (sgld(energy, x, **sgld_options) - x).detach()


def purify_full(energy: ClassifierEnergy, x: Tensor, **sgld_options) -> Tensor:
    """K SGLD steps kept differentiable in x: the exact gradient through every step."""
    return sgld(energy, x, create_graph=True, **sgld_options)


GRADIENTS: dict[str, Callable[..., Tensor]] = {"bpda": purify_bpda, "full": purify_full}


class NormalizedLogits(nn.Module):
    """What every attack differentiates: z / max(1, std_k z_k), the scale detached (same argmax).

    Cross-entropy on raw logits saturates in floating point when margins are large, and its
    gradient is then exactly 0. That happens behind the defense: K SGLD steps at JEM's step size
    can drive a non-EBM's inputs far out of the data range, where margins grow by orders of
    magnitude; PGD then sees zero gradients and reports accuracy that is gradient masking, not
    robustness. A detached per-example temperature keeps the gradient's direction informative.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        z = self.model(x)  # (B, K)
        return z / z.std(1, keepdim=True).detach().clamp_min(1.0)


def zero_gradient_fraction(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> float:
    """Fraction of examples whose attack-loss gradient ∇ₓ CE(model(x), y) is exactly 0 (masking)."""
    zero = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xb), y[i : i + batch_size], reduction="sum"), xb)
        zero.append(g.flatten(1).abs().amax(1) == 0)
    return torch.cat(zero).float().mean().item()


class PixelSpace(nn.Module):
    """A [−1, 1] classifier as one on [0, 1] pixels: f(x·2 − 1)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x * 2 - 1)


class PurifiedClassifier(nn.Module):
    """JEM's defense on [0, 1] pixels; each forward draws fresh randomness from ``generator``.

    x (B, C, H, W) → x·2 − 1 → N noisy copies x + σ·ε → K SGLD steps on E(x) → f → mean of the
    N copies' logits (B, K). ``purify`` is ``purify_bpda`` or ``purify_full`` (how gradients pass
    the SGLD steps; the forward value is the same).
    """

    def __init__(self, energy: ClassifierEnergy, opts: RobustnessOptions, copies: int,
                 purify: Callable[..., Tensor], generator: torch.Generator, classifier: nn.Module | None = None):
        super().__init__()
        unset = [k for k in ("sgld_step_size", "sgld_noise", "sgld_grad_clip", "sgld_clamp") if getattr(opts, k) is None]
        if unset:
            raise ValueError(f"options {unset} are unset (None means the checkpoint's: use resolve_options)")
        self.energy, self.opts, self.copies, self.purify, self.generator = energy, opts, copies, purify, generator
        self.classifier = classifier  # None: the energy's own classifier; else purify with ``energy``, classify with this

    def forward(self, x: Tensor) -> Tensor:
        b, o = len(x), self.opts
        xc = (x * 2 - 1).repeat(self.copies, 1, 1, 1)  # (N·B, C, H, W), copy-major
        xc = xc + o.copy_noise * torch.randn(xc.shape, generator=self.generator, device=xc.device, dtype=xc.dtype)
        xk = self.purify(self.energy, xc, steps=o.purify_steps, step_size=o.sgld_step_size, noise=o.sgld_noise,
                         grad_clip=o.sgld_grad_clip, clamp=(-1.0, 1.0) if o.sgld_clamp else None, generator=self.generator)
        logits = self.energy.logits(xk) if self.classifier is None else self.classifier(xk)
        return logits.view(self.copies, b, -1).mean(0)  # (B, K)


# ---------------------------------------------------------------- curves


@torch.no_grad()
def correct(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    """(N,) bool: argmax model(x) == y."""
    return torch.cat([model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size] for i in range(0, len(x), batch_size)])


def robust_curve(attack, judge: nn.Module, x: Tensor, y: Tensor, clean: Tensor, eps: tuple[float, ...],
                 restarts: int, batch_size: int, step: Callable[[], None]) -> list[float]:
    """Accuracy at each ε (ascending, eps[0] = 0) under ``attack(eps)(x, y) -> x_adv``.

    ``clean`` (N,) bool is the ε = 0 correctness; an example stays robust while it survives every
    restart at every ε so far (the running minimum), and only survivors are attacked further.
    """
    alive = clean.clone()
    accuracy = [alive.float().mean().item()]
    for e in eps[1:]:
        atk = attack(e)
        for _ in range(restarts):
            survivors = alive.nonzero().squeeze(1)
            for idx in survivors.split(batch_size) if len(survivors) else ():
                adv = atk(x[idx], y[idx])
                alive[idx] &= correct(judge, adv, y[idx], batch_size)
            step()
        accuracy.append(alive.float().mean().item())
    return accuracy


def eps_key(e: float) -> str:
    """'eps_8/255' for multiples of 1/255, else 'eps_0.1'."""
    k = e * 255
    return f"eps_{round(k)}/255" if 0 < e < 1 and abs(k - round(k)) < 1e-6 else f"eps_{e:g}"


def is_monotone(curve: list[float]) -> bool:
    return all(b <= a for a, b in zip(curve, curve[1:]))


class Attacker:
    """One evaluation's attacks: the examples (a seeded subset of the test set, as [0, 1] pixels), the bare
    classifier, and the defended ones, each drawing from ``ctx.generator(offset)``."""

    def __init__(self, ctx: EvalContext, opts: RobustnessOptions, torchattacks):
        self.ctx, self.opts, self.torchattacks = ctx, opts, torchattacks
        self.n = min(opts.n_bare, len(ctx.data.y_test))
        self.n_def = min(opts.n_defended, self.n) if opts.defense_gradients else 0
        self.gradients = opts.defense_gradients if self.n_def else ()
        order = torch.randperm(len(ctx.data.y_test), generator=torch.Generator().manual_seed(ctx.seed))[: self.n]
        self.order = order.to(ctx.data.x_test.device)
        self.x, self.y = (ctx.data.x_test[self.order] + 1) / 2, ctx.data.y_test[self.order]  # [0, 1] pixels
        self.def_batch = max(1, opts.batch_size // (opts.copies * opts.eot))
        self.bare = PixelSpace(ctx.model)  # in eval mode while attacked, inside frozen(model)
        # The model's purifier (its energy and resolved SGLD settings), left by its own run for the baseline's.
        purifier = ctx.shared.get("robustness_purifier") if ctx.label != "model" and opts.cross_purify else None
        self.purifier = purifier if self.n_def else None
        self.defenses = [(g, False) for g in self.gradients] + [(g, True) for g in self.gradients if self.purifier]

    def defended(self, copies: int, gradient: str, offset: int, by_model: bool = False) -> PurifiedClassifier:
        """The defense with ``copies`` copies, gradients through it by ``gradient``; ``by_model``: purified by the
        model's energy and SGLD settings, classified by this (baseline) classifier."""
        if not by_model:
            return PurifiedClassifier(self.ctx.energy, self.opts, copies, GRADIENTS[gradient], self.ctx.generator(offset)).eval()
        energy, opts = self.purifier  # the model's resolved options: its SGLD settings, the same steps and noise
        return PurifiedClassifier(energy, opts, copies, GRADIENTS[gradient], self.ctx.generator(offset),
                                  classifier=self.ctx.model).eval()

    def pgd(self, norm: str, model: nn.Module, steps: int) -> Callable[[float], object]:
        """ε ↦ torchattacks' PGD of ``norm`` on ``NormalizedLogits(model)``, α = 2.5 ε / steps, random start."""
        cls, seen = getattr(self.torchattacks, ATTACKS[norm]), NormalizedLogits(model).eval()
        return lambda e: cls(seen, eps=e, alpha=2.5 * e / steps, steps=steps, random_start=True)

    def clean(self) -> tuple[Tensor, dict[bool, Tensor]]:
        """(N,) correctness of the bare classifier, and (n_def,) of each defense: own (False) and, for a baseline
        with ``cross_purify``, the model's purifier (True); empty without a defense."""
        clean = correct(self.bare, self.x, self.y, self.opts.batch_size)
        x_def, y_def = self.x[: self.n_def], self.y[: self.n_def]
        by = sorted({by_model for _, by_model in self.defenses})
        return clean, {b: correct(self.defended(self.opts.copies, "bpda", 300 + 5 * b, b), x_def, y_def, self.def_batch)
                       for b in by}

    def zero_gradients(self) -> dict[str, float]:
        """What each attack sees at the clean inputs: a fraction of exact-zero gradients flags masking."""
        zero_grad = {"bare": zero_gradient_fraction(NormalizedLogits(self.bare), self.x, self.y, self.opts.batch_size)}
        for j, (g, by_model) in enumerate(self.defenses):
            attacked = NormalizedLogits(self.defended(self.opts.copies * self.opts.eot, g, 301 + j, by_model))
            zero_grad[curve_name(g, by_model)] = zero_gradient_fraction(attacked, self.x[: self.n_def], self.y[: self.n_def],
                                                                        self.def_batch)
        return zero_grad

    def curves(self, clean: Tensor, clean_def: dict[bool, Tensor], step: Callable[[], None]) -> dict[str, dict[str, list[float]]]:
        """norm → curve name ("bare", "bpda", "full", and "bpda_by_model", "full_by_model" for a baseline behind
        the model's purifier) → accuracy at each ε of the norm's list."""
        o, seed, curves = self.opts, self.ctx.seed, {}
        x_def, y_def = self.x[: self.n_def], self.y[: self.n_def]
        for i, norm in enumerate(ATTACKS):
            eps = getattr(o, f"{norm}_eps")
            torch.manual_seed(seed + 310 + 10 * i)  # torchattacks' random starts
            curves[norm] = {"bare": robust_curve(self.pgd(norm, self.bare, o.pgd_steps_bare), self.bare, self.x, self.y,
                                                 clean, eps, o.restarts, o.batch_size, step)}
            for j, (g, by_model) in enumerate(self.defenses):
                offset = 320 + 10 * i + 2 * j + 40 * by_model
                torch.manual_seed(seed + offset)
                attacked = self.defended(o.copies * o.eot, g, offset, by_model)  # EOT: copies × eot fresh draws per forward
                judge = self.defended(o.copies, "bpda", offset + 1, by_model)  # the defense itself (same value as "full")
                curves[norm][curve_name(g, by_model)] = robust_curve(
                    self.pgd(norm, attacked, o.pgd_steps_defended), judge, x_def, y_def, clean_def[by_model], eps,
                    o.restarts, self.def_batch, step)
        return curves


def curve_name(gradient: str, by_model: bool) -> str:
    """"bpda" / "full", or "bpda_by_model" / "full_by_model" for a baseline behind the model's purifier."""
    return f"{gradient}_by_model" if by_model else gradient


def suite_robustness(ctx: EvalContext, options: dict | None = None) -> dict:
    """PGD L∞ / L2 accuracy-vs-ε curves for the bare classifier and for the purification defense
    (attacked with BPDA and with full backprop, both under EOT); writes ``{prefix}robustness.png``.

    ``options`` overrides ``RobustnessOptions`` fields (e.g. ``{"linf_eps": [0, 0.1], "n_bare": 100}``).
    Every random draw is seeded from ``ctx.seed``: the defense's through explicit generators,
    torchattacks' random starts through torch's global RNG, which is forked and restored.
    """
    options = options if options is not None else ctx.options.get("robustness")
    torchattacks = import_torchattacks()
    opts = resolve_options(ctx, options)
    attacker = Attacker(ctx, opts, torchattacks)
    n, n_def = attacker.n, attacker.n_def
    direct_clean = (ctx.logits[attacker.order].argmax(1) == attacker.y).float().mean().item()
    total = (1 + len(attacker.defenses)) * opts.restarts * sum(len(getattr(opts, f"{m}_eps")) - 1 for m in ATTACKS)
    cuda = list(range(torch.cuda.device_count())) if ctx.data.x_test.device.type == "cuda" else []
    purifier_net = attacker.purifier[0].net if attacker.purifier else None
    with frozen(ctx.model), frozen(purifier_net), torch.random.fork_rng(devices=cuda), \
            tqdm(total=total, desc=f"robustness ({ctx.label})", disable=not ctx.progress, leave=False) as bar:
        clean, clean_def = attacker.clean()
        zero_grad = attacker.zero_gradients()
        curves = attacker.curves(clean, clean_def, bar.update)
    if ctx.label == "model":  # the baseline evaluated next is also defended by this model's purifier
        ctx.shared["robustness_purifier"] = (ctx.energy, opts)
    result = summarize(ctx, opts, curves, n, n_def, direct_clean, {b: v.float().mean().item() for b, v in clean_def.items()})
    result["zero_gradient_fraction"] = zero_grad
    masked = {name: f for name, f in zero_grad.items() if f > 0.05}
    if masked:
        warnings.warn(f"robustness ({ctx.label}): the attack gets exactly-zero gradients at clean inputs for {masked} "
                      "(fraction of examples); robust accuracy there may be gradient masking", RuntimeWarning, stacklevel=2)
    plot_robustness(curves, {m: getattr(opts, f"{m}_eps") for m in ATTACKS},
                    ctx.out_dir / f"{ctx.prefix}robustness.png", f"{ctx.label}: PGD accuracy vs ε (n={n}, defended n={n_def})")
    return {"robustness": result}


def summarize(ctx: EvalContext, opts: RobustnessOptions, curves: dict, n: int, n_def: int,
              clean: float, clean_def: dict[bool, float]) -> dict:
    """The result tree: curves as lists, each point also as a scalar under ``eps_<v>``, and checks."""
    result: dict = {
        "eps_units": "[0, 1] pixels (model input [-1, 1]: 2x that distance)",
        "n_bare": n, "n_defended": n_def,
        "clean_accuracy": clean, "defended_clean_accuracy": clean_def.get(False),
        "attack": {"pgd_steps_bare": opts.pgd_steps_bare, "pgd_steps_defended": opts.pgd_steps_defended,
                   "restarts": opts.restarts, "eot": opts.eot, "attacker_copies": opts.copies * opts.eot,
                   "step": "alpha = 2.5 eps / steps, random start",
                   "loss": "cross-entropy on logits / max(1, std over classes), scale detached"},
        "defense": {"steps": opts.purify_steps, "copies": opts.copies, "copy_noise": opts.copy_noise,
                    "sgld_step_size": opts.sgld_step_size, "sgld_noise": opts.sgld_noise,
                    "sgld_grad_clip": opts.sgld_grad_clip, "sgld_clamp": opts.sgld_clamp,
                    "logits": "mean over copies"},
    }
    if True in clean_def:  # a baseline behind the model's purifier
        _, model_opts = ctx.shared["robustness_purifier"]
        result["defended_clean_accuracy_by_model"] = clean_def[True]
        result["defense_by_model"] = {"purifier": "the model's energy and SGLD settings; this classifier's logits",
                                      "sgld_step_size": model_opts.sgld_step_size, "sgld_noise": model_opts.sgld_noise,
                                      "sgld_grad_clip": model_opts.sgld_grad_clip, "sgld_clamp": model_opts.sgld_clamp}
    consistent, monotone = True, True
    for norm, by_curve in curves.items():
        eps = list(getattr(opts, f"{norm}_eps"))
        entry: dict = {"eps": eps, **by_curve}
        for k, e in enumerate(eps):
            entry[eps_key(e)] = {name: acc[k] for name, acc in by_curve.items()}
        entry["monotone"] = {name: is_monotone(acc) for name, acc in by_curve.items()}
        monotone &= all(entry["monotone"].values())
        consistent &= abs(by_curve["bare"][0] - clean) < 0.5 / n
        consistent &= all(acc[0] == clean_def[name.endswith("_by_model")] for name, acc in by_curve.items() if name != "bare")
        result[norm] = entry
    result["monotone"] = monotone
    result["eps0_is_clean"] = consistent
    if not consistent:
        warnings.warn(f"robustness ({ctx.label}): accuracy at eps = 0 differs from clean accuracy {clean:.4f}; "
                      "the [0, 1] pixel mapping or the bookkeeping is off", RuntimeWarning, stacklevel=2)
    return result


def plot_robustness(curves: dict, eps: dict, path: str | Path, title: str) -> Path:
    """One panel per norm: accuracy vs ε for the bare classifier and each attack on the defense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"bare": "bare classifier", "bpda": "defended, BPDA + EOT", "full": "defended, full backprop + EOT",
              "bpda_by_model": "model's purifier, BPDA + EOT", "full_by_model": "model's purifier, full backprop + EOT"}
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (norm, by_curve) in zip(axes[0], curves.items()):
        for name, acc in by_curve.items():
            ax.plot(eps[norm], acc, marker="o", label=labels.get(name, name))
        ax.set(xlabel=f"ε ({'L∞' if norm == 'linf' else 'L2'}, [0, 1] pixel units)", ylabel="accuracy",
               ylim=(-0.02, 1.02), title=norm)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
