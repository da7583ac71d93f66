"""`jemkit demo`: train a JEM and its discriminative baseline on the embedded digits,
evaluate both, and write a report — the whole pipeline in one call."""
from __future__ import annotations

from pathlib import Path

from .config import load_preset
from .evaluation import evaluate
from .report import write_report
from .training import train

def run_demo(out_dir: str | Path, overrides: list[str] = (), *, overwrite: bool = False, progress: bool = True) -> dict:
    """Train digits-jem and digits-baseline into out_dir/runs/, evaluate into out_dir/, write the report."""
    out_dir = Path(out_dir)
    jem = train(load_preset("digits-jem", overrides), out_dir / "runs" / "jem", overwrite=overwrite, progress=progress)
    base = train(load_preset("digits-baseline", overrides), out_dir / "runs" / "baseline", overwrite=overwrite, progress=progress)
    # no Inception FID on 8×8 digits: meaningless at that size, and minutes of CPU time
    metrics = evaluate(jem.checkpoint, out_dir, baseline=base.checkpoint, inception=False, progress=progress)
    write_report(out_dir)
    return metrics
