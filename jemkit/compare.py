"""Compare training runs from their ``metrics.csv``: curves side by side, time to quality, curve agreement.

``compare_runs([ref, other, ...], out_dir)`` writes

* ``compare.png`` -- test accuracy against step and against wall-clock minutes, train loss and the
  energies E(x_data), E(x_sampled) against step, one line per run;
* ``compare.json`` -- per run: last step, wall seconds, final and best test accuracy; per other run:
  ``time_to_reference`` (for every evaluation of the reference run, the reference's accuracy and
  seconds, and the first seconds at which the other run's test accuracy reached it; the ratio of the
  two is the time-to-quality speedup) and ``curve_diff`` (max and mean |difference| of each shared
  column over the steps both runs logged: the tolerance check for, e.g., a bf16 run against float32).

Time is the ``seconds`` column each run logged (wall clock since its start), so runs compare fairly
only when they ran under the same conditions (e.g. side by side, one thread each).
"""
from __future__ import annotations

import json
from pathlib import Path

from .report import read_csv_columns

Columns = dict[str, tuple[list[float], list[float]]]
CURVE_COLUMNS = ("test_acc", "acc", "ce", "loss", "e_data", "e_sample", "gap")


def read_run(run_dir: str | Path) -> Columns:
    """Column -> (steps, values) of ``run_dir/metrics.csv``; a clear error when it is missing or has no test accuracy."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.csv (is it a `jemkit train` run directory?)")
    cols = read_csv_columns(path)
    if "test_acc" not in cols or "seconds" not in cols:
        raise ValueError(f"{path}: no test_acc/seconds columns; compare needs a run that evaluated at least once")
    return cols


def _at_steps(cols: Columns, name: str) -> dict[float, float]:
    steps, values = cols.get(name, ([], []))
    return dict(zip(steps, values))


def accuracy_timeline(cols: Columns) -> list[tuple[float, float, float]]:
    """(step, seconds, test accuracy) at every evaluation, in step order."""
    seconds = _at_steps(cols, "seconds")
    return [(s, seconds[s], a) for s, a in zip(*cols["test_acc"]) if s in seconds]


def time_to_reach(timeline: list[tuple[float, float, float]], accuracy: float) -> float | None:
    """Seconds of the first evaluation with test accuracy ≥ ``accuracy`` (None if never)."""
    return next((sec for _, sec, acc in timeline if acc >= accuracy), None)


def curve_diff(a: Columns, b: Columns, columns: tuple[str, ...] = CURVE_COLUMNS) -> dict[str, dict]:
    """Max and mean |a − b| of each column over the steps both runs logged (and how many such steps)."""
    out = {}
    for name in columns:
        va, vb = _at_steps(a, name), _at_steps(b, name)
        common = sorted(set(va) & set(vb))
        if common:
            d = [abs(va[s] - vb[s]) for s in common]
            out[name] = {"max_abs": max(d), "mean_abs": sum(d) / len(d), "steps": len(common)}
    return out


def summarize(cols: Columns) -> dict:
    timeline = accuracy_timeline(cols)
    accs = [acc for _, _, acc in timeline]
    return {"last_step": max(cols["seconds"][0]), "seconds": max(cols["seconds"][1]),
            "final_test_acc": accs[-1] if accs else None, "best_test_acc": max(accs) if accs else None}


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path, labels: list[str] | None = None) -> dict:
    """Compare runs against the first (the reference); write compare.json and compare.png into ``out_dir``."""
    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two run directories (the first is the reference)")
    labels = list(labels) if labels else [Path(r).name for r in run_dirs]
    if len(labels) != len(run_dirs):
        raise ValueError(f"got {len(labels)} labels for {len(run_dirs)} runs")
    runs = [read_run(r) for r in run_dirs]
    ref_timeline = accuracy_timeline(runs[0])
    record = {"reference": labels[0], "runs": {}}
    for label, run_dir, cols in zip(labels, run_dirs, runs):
        entry = {"run_dir": str(run_dir), **summarize(cols)}
        if cols is not runs[0]:
            timeline = accuracy_timeline(cols)
            entry["time_to_reference"] = [
                {"step": step, "accuracy": acc, "reference_seconds": sec, "seconds": (t := time_to_reach(timeline, acc)),
                 "speedup": sec / t if t else None}
                for step, sec, acc in ref_timeline]
            entry["curve_diff"] = curve_diff(runs[0], cols)
        record["runs"][label] = entry
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(record, indent=1))
    plot_comparison(dict(zip(labels, runs)), out / "compare.png")
    return record


def plot_comparison(runs: dict[str, Columns], out_png: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 3.4), layout="constrained")
    ax_step, ax_time, ax_loss, ax_energy = fig.subplots(1, 4)
    for i, (label, cols) in enumerate(runs.items()):
        color = f"C{i}"
        timeline = accuracy_timeline(cols)
        ax_step.plot([s for s, _, _ in timeline], [a for _, _, a in timeline], color=color, marker=".", label=label)
        ax_time.plot([t / 60 for _, t, _ in timeline], [a for _, _, a in timeline], color=color, marker=".", label=label)
        if "loss" in cols:
            ax_loss.plot(*cols["loss"], color=color, label=label, lw=0.8)
        for name, style in (("e_data", "-"), ("e_sample", "--")):
            if name in cols:
                ax_energy.plot(*cols[name], color=color, ls=style, lw=0.8, label=f"{label} {name}")
    for ax in (ax_loss, ax_energy):  # a diverged run's spikes would flatten every other curve
        values = [abs(v) for line in ax.get_lines() for v in line.get_ydata()]
        if values and max(values) > 50:
            ax.set_yscale("symlog", linthresh=1.0)
    for ax, title, xlabel in ((ax_step, "test accuracy", "step"), (ax_time, "test accuracy", "wall-clock minutes"),
                              (ax_loss, "train loss", "step"), (ax_energy, "energy (solid: data, dashed: samples)", "step")):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if ax.has_data():
            ax.legend(fontsize="small")
    fig.savefig(out_png, dpi=100)
    return out_png


def format_comparison(record: dict) -> str:
    """A plain-text summary: one line per run, then the time each run took to reach the reference's final
    test accuracy (and its best, where that is higher)."""
    ref = record["reference"]
    lines = [f"{'run':<24} {'steps':>7} {'minutes':>8} {'final acc':>10} {'best acc':>9}"]
    for label, e in record["runs"].items():
        fin, best = (f"{v:.4f}" if v is not None else "—" for v in (e["final_test_acc"], e["best_test_acc"]))
        lines.append(f"{label:<24} {e['last_step']:>7.0f} {e['seconds'] / 60:>8.1f} {fin:>10} {best:>9}")
    ref_entry = record["runs"][ref]
    for label, e in record["runs"].items():
        if label == ref or not e.get("time_to_reference"):
            continue
        targets = [("final", e["time_to_reference"][-1])]
        best = max(e["time_to_reference"], key=lambda t: t["accuracy"])
        if best["accuracy"] != targets[0][1]["accuracy"] and best["accuracy"] == ref_entry["best_test_acc"]:
            targets.append(("best", best))
        for which, t in targets:
            if t["seconds"] is None:
                lines.append(f"{label} never reached {ref}'s {which} test accuracy {t['accuracy']:.4f}")
            else:
                lines.append(f"{label} reached {ref}'s {which} test accuracy {t['accuracy']:.4f} after {t['seconds'] / 60:.1f} min "
                             f"({ref}: {t['reference_seconds'] / 60:.1f} min; {t['speedup']:.2f}x faster)")
        diffs = ", ".join(f"{k} {v['max_abs']:.4g}" for k, v in e["curve_diff"].items())
        if diffs:
            lines.append(f"  max |{label} - {ref}| over shared steps: {diffs}")
    return "\n".join(lines)
