"""The run directory before training starts: a fresh start, a resume, or a refusal when it holds
another run (its saved ``config.yaml`` differs)."""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import list_checkpoints
from ..config import Config, load_config


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            keys += config_diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            keys.append(prefix + k)
    return keys


def prepare_run_dir(cfg: Config, run_dir: Path, overwrite: bool, resume: bool) -> bool:
    """Decide between a fresh start and a resume (True); refuse a directory holding another run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"--out {run_dir} is a file, not a directory")
    has_run = bool(list_checkpoints(run_dir / "checkpoints"))
    if has_run and not overwrite:
        saved = run_dir / "config.yaml"
        diff = config_diff(load_config(saved).to_dict(), cfg.to_dict()) if saved.is_file() else ["config.yaml missing"]
        if diff and not resume:
            raise FileExistsError(
                f"{run_dir} holds another run (its config differs at {', '.join(diff[:6])}); pass --overwrite to "
                "replace it, --resume to continue it with this config, or choose another --out")
        return True
    if overwrite:
        _clear(run_dir)
    return False


def _clear(run_dir: Path) -> None:
    """Remove what a previous run wrote: checkpoints, sample grids, metrics, events, TensorBoard files."""
    for sub in ("checkpoints", "samples"):
        for p in (run_dir / sub).glob("*") if (run_dir / sub).is_dir() else []:
            p.unlink()
    for name in ("metrics.csv", "events.log"):
        (run_dir / name).unlink(missing_ok=True)
    for p in run_dir.glob("events.out.tfevents.*"):
        p.unlink()
