"""Compare training runs from their ``metrics.csv``: curves side by side, time to quality, curve agreement.

``compare_runs([ref, other, ...], out_dir)`` writes

* ``compare.png`` -- test accuracy against step and against wall-clock minutes, train loss and the
  energies E(x_data), E(x_sampled) against step, one line per run;
* ``compare.json`` -- per run: last step, wall seconds, final and best test accuracy; per other run:
  ``time_to_reference`` (for every evaluation of the reference run, the reference's accuracy and
  seconds, and the first seconds at which the other run's test accuracy reached it; the ratio of the
  two is the time-to-quality speedup) and ``curve_diff`` (max and mean |difference| of each shared
  column over the steps both runs logged: the tolerance check for, e.g., a bf16 run against float32).

With ``quality=True`` it also writes ``quality`` (``quality_comparison``): **time to quality**, the wall time
until a run first reaches, at one evaluation, test accuracy ≥ the reference's final accuracy − 1 point,
test ECE ≤ the reference's final ECE and class agreement of class-conditional fresh chains ≥ 90%
(``test_acc``, ``test_ece``, ``test_agreement`` of metrics.csv; the last needs ``train.eval_samples``); the
reference runs are timed to their own final accuracy − 1 point. Runs given the same label are seeds of one
recipe: targets come from the reference's medians, and each recipe's time is the median over its seeds.

When a label repeats, ``by_recipe`` (``recipe_accuracy``) gives each recipe's final and best test accuracy
as mean ± sample standard deviation over its seeds (e.g. the semi-supervised comparison of
``benchmarks/semi_supervised.sh``), and every other recipe's difference of means from the reference's.

Time is the ``seconds`` column each run logged (wall clock since its start), so runs compare fairly
only when they ran under the same conditions (e.g. side by side, one thread each).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from .report import read_csv_columns

Columns = dict[str, tuple[list[float], list[float]]]
CURVE_COLUMNS = ("test_acc", "acc", "ce", "loss", "e_data", "e_sample", "gap")
ACC_DROP, MIN_AGREEMENT = 0.01, 0.9  # time to quality: final accuracy − 1 point; 90% class agreement


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


def evaluations(cols: Columns) -> list[dict]:
    """One dict per evaluation row of metrics.csv, in step order: step, seconds and the test_* columns logged then."""
    seconds = _at_steps(cols, "seconds")
    tests = {name: _at_steps(cols, name) for name in ("test_acc", "test_ece", "test_agreement")}
    return [{"step": s, "seconds": seconds[s], **{k: v[s] for k, v in tests.items() if s in v}}
            for s in sorted(tests["test_acc"]) if s in seconds]


def time_to_quality(cols: Columns, accuracy: float, ece: float | None = None, agreement: float | None = None) -> dict | None:
    """The first evaluation (step, seconds) with test_acc ≥ ``accuracy`` and, when given, test_ece ≤ ``ece`` and
    test_agreement ≥ ``agreement``; None if the run never got there."""
    for e in evaluations(cols):
        if (e["test_acc"] >= accuracy and (ece is None or e.get("test_ece", float("inf")) <= ece)
                and (agreement is None or e.get("test_agreement", -1.0) >= agreement)):
            return {"step": e["step"], "seconds": e["seconds"]}
    return None


def quality_comparison(runs: list[Columns], labels: list[str]) -> dict:
    """Time to quality of every run (see the module docstring); runs sharing a label are seeds of one recipe and
    the first label is the reference. Per recipe: each seed's time and step, the median seconds, and the ratio of
    that median to the reference's (None where a seed never reached quality)."""
    for cols, label in zip(runs, labels):
        missing = [c for c in ("test_ece",) + (("test_agreement",) if label != labels[0] else ()) if c not in cols]
        if missing:
            raise ValueError(f"run '{label}' logged no {' or '.join(missing)}: time to quality needs a run trained by this "
                             "jemkit version, with train.eval_samples > 0 for the runs compared with the reference")
    finals = [evaluations(c)[-1] for c, l in zip(runs, labels) if l == labels[0]]
    targets = {"test_acc": statistics.median(f["test_acc"] for f in finals) - ACC_DROP,
               "test_ece": statistics.median(f["test_ece"] for f in finals), "test_agreement": MIN_AGREEMENT}
    out: dict = {"reference": labels[0], "targets": targets, "recipes": {}}
    for label in dict.fromkeys(labels):
        seeds = []
        for cols, l in zip(runs, labels):
            if l != label:
                continue
            if label == labels[0]:  # the reference: its own final accuracy − 1 point
                seeds.append(time_to_quality(cols, evaluations(cols)[-1]["test_acc"] - ACC_DROP))
            else:
                seeds.append(time_to_quality(cols, targets["test_acc"], targets["test_ece"], MIN_AGREEMENT))
        reached = all(seeds)
        out["recipes"][label] = {"seeds": seeds, "median_seconds": statistics.median(s["seconds"] for s in seeds) if reached else None}
    ref = out["recipes"][labels[0]]["median_seconds"]
    for entry in out["recipes"].values():
        entry["ratio"] = entry["median_seconds"] / ref if entry["median_seconds"] is not None and ref else None
    return out


def recipe_accuracy(summaries: list[dict], groups: list[str]) -> dict:
    """Per recipe (``groups``: one label per run, repeated for seeds): n, and mean and sample std of the runs'
    ``final_test_acc`` and ``best_test_acc`` (std 0 for one seed); per non-reference recipe also
    ``best_minus_reference`` and ``final_minus_reference``, the differences of means from the first recipe's."""
    out: dict[str, dict] = {}
    for group in dict.fromkeys(groups):
        entry: dict = {"n": groups.count(group)}
        for key in ("final_test_acc", "best_test_acc"):
            values = [s[key] for s, g in zip(summaries, groups) if g == group and s[key] is not None]
            short = key.split("_")[0]
            entry[f"{short}_mean"] = statistics.fmean(values) if values else None
            entry[f"{short}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        out[group] = entry
    ref = out[groups[0]]
    for group, entry in out.items():
        if group != groups[0]:
            for short in ("best", "final"):
                a, b = entry[f"{short}_mean"], ref[f"{short}_mean"]
                entry[f"{short}_minus_reference"] = a - b if a is not None and b is not None else None
    return out


def _unique(labels: list[str]) -> list[str]:
    """Labels made unique for the curves: a repeated label gets #2, #3, ..."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


def compare_runs(run_dirs: list[str | Path], out_dir: str | Path, labels: list[str] | None = None,
                 quality: bool = False) -> dict:
    """Compare runs against the first (the reference); write compare.json and compare.png into ``out_dir``.
    With ``quality``, also the time-to-quality comparison (``quality_comparison``; repeated labels are seeds)."""
    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two run directories (the first is the reference)")
    groups = list(labels) if labels else [Path(r).name for r in run_dirs]
    if len(groups) != len(run_dirs):
        raise ValueError(f"got {len(groups)} labels for {len(run_dirs)} runs")
    labels = _unique(groups)
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
    if quality:
        record["quality"] = quality_comparison(runs, groups)
    if len(set(groups)) < len(groups):
        record["by_recipe"] = recipe_accuracy([record["runs"][label] for label in labels], groups)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(record, indent=1))
    plot_comparison(dict(zip(labels, runs)), out / "compare.png", groups=groups if quality else None,
                    targets=record["quality"]["targets"] if quality else None)
    return record


def plot_comparison(runs: dict[str, Columns], out_png: Path, groups: list[str] | None = None,
                    targets: dict | None = None) -> Path:
    """The curves of every run, one colour per run (or, with ``groups``, per recipe, seeds in line styles);
    with time-to-quality ``targets`` the accuracy and ECE panels zoom to the targets and draw them."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with_ece = any("test_ece" in cols for cols in runs.values())
    fig = Figure(figsize=(20 if with_ece else 16, 3.4), layout="constrained")
    ax_step, ax_time, ax_loss, ax_energy, *ax_ece = fig.subplots(1, 5 if with_ece else 4)
    recipes = list(dict.fromkeys(groups)) if groups else list(runs)
    seen: dict[str, int] = {}
    for i, (label, cols) in enumerate(runs.items()):
        group = groups[i] if groups else label
        seen[group] = seen.get(group, 0) + 1
        color, ls = f"C{recipes.index(group)}", ("-", "--", ":", "-.")[(seen[group] - 1) % 4]
        timeline = accuracy_timeline(cols)
        ax_step.plot([s for s, _, _ in timeline], [a for _, _, a in timeline], color=color, ls=ls, marker=".", label=label)
        ax_time.plot([t / 60 for _, t, _ in timeline], [a for _, _, a in timeline], color=color, ls=ls, marker=".", label=label)
        if "loss" in cols:
            ax_loss.plot(*cols["loss"], color=color, ls=ls, label=label, lw=0.8)
        if ax_ece and "test_ece" in cols:
            seconds = _at_steps(cols, "seconds")
            steps, values = cols["test_ece"]
            ax_ece[0].plot([seconds[s] / 60 for s in steps if s in seconds], [v for s, v in zip(steps, values) if s in seconds],
                           color=color, ls=ls, marker=".", label=label)
        for name, style in (("e_data", "-"), ("e_sample", "--")):
            if name in cols:
                ax_energy.plot(*cols[name], color=color, ls=style, lw=0.8, label=f"{label} {name}")
    if targets:
        top = max((a for cols in runs.values() for _, _, a in accuracy_timeline(cols)), default=targets["test_acc"])
        for ax in (ax_step, ax_time):
            ax.axhline(targets["test_acc"], color="k", lw=0.8, ls=":", label="target")
            ax.set_ylim(targets["test_acc"] - 0.06, top + 0.005)
        for ax in ax_ece:
            ax.axhline(targets["test_ece"], color="k", lw=0.8, ls=":", label="target")
            ax.set_ylim(0, 3 * targets["test_ece"])
    for ax in (ax_loss, ax_energy):  # a diverged run's spikes would flatten every other curve
        values = [abs(v) for line in ax.get_lines() for v in line.get_ydata()]
        if values and max(values) > 50:
            ax.set_yscale("symlog", linthresh=1.0)
    for ax, title, xlabel in ((ax_step, "test accuracy", "step"), (ax_time, "test accuracy", "wall-clock minutes"),
                              (ax_loss, "train loss", "step"), (ax_energy, "energy (solid: data, dashed: samples)", "step"),
                              *((a, "test ECE (20 bins)", "wall-clock minutes") for a in ax_ece)):
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
    if "by_recipe" in record:
        lines.append(format_recipes(record["by_recipe"]))
    if "quality" in record:
        lines.append(format_quality(record["quality"]))
    return "\n".join(lines)


def format_recipes(by_recipe: dict) -> str:
    """One line per recipe: best and final test accuracy, mean ± std over its seeds, and the difference from the reference's."""
    pm = lambda e, k: "—" if e[f"{k}_mean"] is None else f"{e[f'{k}_mean']:.4f} ± {e[f'{k}_std']:.4f}"
    lines = [f"per recipe, mean ± std over seeds: {'recipe':<16} {'n':>2} {'best acc':>17} {'final acc':>17}"]
    for label, e in by_recipe.items():
        diff = e.get("best_minus_reference")
        lines.append(f"{'':<34} {label:<16} {e['n']:>2} {pm(e, 'best'):>17} {pm(e, 'final'):>17}"
                     + (f"  (best {diff * 100:+.1f} points)" if diff is not None else ""))
    return "\n".join(lines)


def format_quality(q: dict) -> str:
    """The time-to-quality table: targets, then per recipe each seed's minutes (step) and the median's ratio."""
    t = q["targets"]
    lines = [f"time to quality: test accuracy >= {t['test_acc']:.4f} (the reference's final - {ACC_DROP * 100:.0f} point), "
             f"ECE <= {t['test_ece']:.4f}, class agreement >= {t['test_agreement']:.0%}; {q['reference']} timed to its own "
             "final accuracy - 1 point"]
    for label, e in q["recipes"].items():
        seeds = ", ".join(f"{s['seconds'] / 60:.1f} min (step {s['step']:.0f})" if s else "never" for s in e["seeds"])
        median = f"median {e['median_seconds'] / 60:.1f} min" if e["median_seconds"] is not None else "not reached by every seed"
        ratio = f", {e['ratio']:.2f}x {q['reference']}'s" if e["ratio"] is not None and label != q["reference"] else ""
        lines.append(f"  {label:<22} {median}{ratio}  [{seeds}]")
    return "\n".join(lines)

