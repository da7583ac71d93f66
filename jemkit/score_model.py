"""Score models: a noise-conditional score network plus what it expects as input, its noise levels,
annealed-Langevin sampling, the picture of its samples, and loading one from a checkpoint.

A score model maps (x, σ) to s(x, σ) ≈ ∇ₓ log p_σ(x), the score of the data smoothed by N(0, σ²I).
It has no energy and no classes; it is trained by ``train.objective = dsm | ssm | ncsn``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from .config import Config, ScoreConfig
from .objectives.score import geometric_sigmas
from .sampling.annealed import annealed_langevin
from .sampling.init import uniform_init


class ScoreModel(nn.Module):
    """Maps x of shape (N, *input_shape) and σ (a number or (N,)) to the score, shaped like x.

    ``input_shape`` is (C, H, W) for images in [−1, 1] or (D,) for points; ``preprocessing`` records
    how raw data became model input. ``check_finite`` refuses NaN/Inf inputs (one host sync; the
    trainer turns it off on its hot path).
    """

    def __init__(self, net: nn.Module, input_shape: tuple[int, ...], preprocessing: dict | None = None):
        super().__init__()
        self.net = net
        self.input_shape = tuple(int(s) for s in input_shape)
        self.preprocessing = dict(preprocessing or {})
        self.check_finite = True

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        if x.dim() != 1 + len(self.input_shape) or tuple(x.shape[1:]) != self.input_shape:
            expected = "(N, " + ", ".join(map(str, self.input_shape)) + ")"
            raise ValueError(f"expected inputs of shape {expected}, got {tuple(x.shape)}")
        if self.check_finite and not torch.isfinite(x).all():
            raise ValueError(f"inputs contain NaN or Inf values ({int((~torch.isfinite(x)).sum())} of {x.numel()})")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        return self.net(x, sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma)


def noise_levels(objective: str, cfg: ScoreConfig) -> Tensor:
    """The σ's a score model is trained on and sampled with: NCSN's geometric σ_1 > … > σ_L, or the one
    level ``sigma_min`` of dsm and ssm."""
    if objective == "ncsn":
        return geometric_sigmas(cfg.sigma_max, cfg.sigma_min, cfg.num_sigmas)
    return torch.tensor([cfg.sigma_min])


def draw_samples(
    model: ScoreModel,
    cfg: Config,
    n: int,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``n`` samples by annealed Langevin dynamics from U(−1, 1) with the config's noise levels and
    step size (``steps`` per level overrides ``score.sampler_steps``)."""
    s = cfg.score
    x0 = uniform_init(n, model.input_shape, generator=generator, device=device)
    return annealed_langevin(model, x0, sigmas=noise_levels(cfg.train.objective, s), eps=s.sampler_eps,
                             steps=s.sampler_steps if steps is None else steps, denoise=s.denoise, generator=generator)


def save_samples(x: Tensor, path: str | Path, reference: Tensor | None = None) -> Path:
    """Images (N, C, H, W) as a PNG grid; 2-D points (N, 2) as a scatter plot over ``reference`` data (grey)."""
    if x.dim() == 4:
        from .images import save_grid

        return save_grid(x, path)
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"can draw images (N, C, H, W) or 2-D points (N, 2), got {tuple(x.shape)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if reference is not None:
        r = reference.detach().cpu()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="0.75", label="data", linewidths=0)
    p = x.detach().cpu()
    ax.scatter(p[:, 0], p[:, 1], s=2, c="tab:red", label="samples", linewidths=0)
    ax.set(xlim=(-1.25, 1.25), ylim=(-1.25, 1.25), aspect="equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def load_score_model(path: str | Path, device: str | torch.device = "cpu") -> ScoreModel:
    """Load a score checkpoint (file, record, or run directory → latest valid) as a ``ScoreModel`` in eval
    mode; ``.record`` holds the checkpoint record (its ``config`` has the noise levels and sampler)."""
    from safetensors.torch import load_file

    from .config import SCORE_OBJECTIVES
    from .nets import build_net
    from .training.checkpoint import CorruptCheckpoint, read_record, resolve_checkpoint

    record_path = resolve_checkpoint(path)
    record = read_record(record_path)
    if record.get("objective") not in SCORE_OBJECTIVES:
        raise ValueError(f"{record_path} is not a score model (objective '{record.get('objective')}'); use jemkit.load")
    net = build_net(record["arch"], record["input_shape"][0], record["num_classes"], **record["net_options"])
    model = ScoreModel(net, tuple(record["input_shape"]), record.get("preprocessing"))
    weights = record_path.with_suffix(".safetensors")
    try:
        model.load_state_dict(load_file(str(weights), device=str(device)))
    except Exception as err:  # safetensors' own error type, or keys/shapes that do not match the architecture
        raise CorruptCheckpoint(f"{weights}: cannot be loaded as a '{record['arch']}' score model ({err})") from err
    model.record = record
    return model.to(device).eval()


def is_score_checkpoint(path: str | Path) -> bool:
    """Whether a checkpoint (or run directory) holds a score model."""
    from .config import SCORE_OBJECTIVES
    from .training.checkpoint import read_record, resolve_checkpoint

    return read_record(resolve_checkpoint(path), verify=False).get("objective") in SCORE_OBJECTIVES


def sample_to_file(checkpoint: str | Path, out: str | Path, n: int, *, steps: int | None = None, seed: int = 0,
                   device: torch.device | str = "cpu") -> str:
    """``jemkit sample`` for a score model: ``n`` annealed-Langevin samples from U(−1, 1) to a PNG; 2-D points
    are drawn over the held-out data and scored by their energy distance to it. Returns a one-line summary."""
    from .config import config_from_dict
    from .data import load_dataset
    from .data.toys import energy_distance
    from .utils import make_generator

    model = load_score_model(checkpoint, device)
    cfg = config_from_dict(model.record["config"])
    x = draw_samples(model, cfg, n, steps=steps, generator=make_generator(device, seed), device=device)
    reference, extra = None, ""
    if x.dim() == 2:
        reference = load_dataset(cfg.data.name, split_seed=cfg.data.split_seed).x_test.to(device)
        extra = f"; energy distance to {len(reference)} held-out points: {energy_distance(x, reference):.4f}"
    levels = len(noise_levels(cfg.train.objective, cfg.score))
    per_level = cfg.score.sampler_steps if steps is None else steps
    return f"wrote {save_samples(x, out, reference)} ({n} samples, annealed Langevin {levels} x {per_level} steps){extra}"
