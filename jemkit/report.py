"""Turn a ``jemkit eval`` output directory into a self-contained report.

``write_report(eval_dir)`` reads ``eval_dir/metrics.json`` (and, when present,
the training run directories it points to), then writes two files:

* ``report.html`` -- fully self-contained: inline CSS, images embedded as
  ``data:image/png;base64,...``, no scripts, no external URLs.
* ``report.md`` -- the same content in Markdown, referencing images by their
  filename relative to ``eval_dir``.

Both are rendered by Jinja2 from ``jemkit/templates/report.html.j2`` and ``report.md.j2``
(the HTML one autoescaped).

Before the images are collected, training curves are plotted from each run's
``metrics.csv`` (``training_curves.png``, ``baseline_training_curves.png``), so every image
the report shows lives in ``eval_dir``. Figures of the same kind for the model and the
baseline (``X.png`` and ``baseline_X.png``) are shown side by side.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

_SKIP_KEYS = {"baseline", "checkpoint", "run_dir"}
_CURVE_PANELS = (("loss", ("loss", "ce")), ("accuracy", ("acc", "test_acc")),
                 ("energy", ("e_data", "e_sample", "gap")), ("learning rate", ("lr",)),
                 ("host memory, MiB", ("rss_mb", "peak_rss_mb")))


def _flatten(tree: Any, prefix: str = "") -> dict[str, float | None]:
    """Dotted key -> value for every numeric (or null) leaf of a nested dict."""
    out: dict[str, float | None] = {}
    if not isinstance(tree, dict):
        return out
    for key, value in tree.items():
        if not prefix and key in _SKIP_KEYS:
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, dotted + "."))
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out[dotted] = value
    return out


def _fmt(value: float | None) -> str:
    """Four decimals (scientific for very small/large magnitudes); missing -> em dash."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    if value == 0 or not math.isfinite(value) or 1e-3 <= abs(value) < 1e6:
        return f"{value:.4f}"
    return f"{value:.4e}"


def _metric_rows(metrics: dict) -> tuple[list[tuple[str, str, str]], bool]:
    """Table rows (key, model, baseline) and whether a baseline exists."""
    baseline = metrics.get("baseline")
    has_base = isinstance(baseline, dict)
    model, base = _flatten(metrics), _flatten(baseline if has_base else {})
    keys = list(model) + [k for k in base if k not in model]
    return [(k, _fmt(model.get(k)), _fmt(base.get(k))) for k in keys], has_base


def read_csv_columns(csv_path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Column -> (steps, values) for every numeric cell of rows with a numeric step."""
    cols: dict[str, tuple[list[float], list[float]]] = {}
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                step = float(row.get("step") or "")
            except ValueError:
                continue
            for name, cell in row.items():
                try:
                    value = float(cell)
                except (TypeError, ValueError):
                    continue
                if name and name != "step" and math.isfinite(value):
                    xs, ys = cols.setdefault(name, ([], []))
                    xs.append(step)
                    ys.append(value)
    return cols


def plot_training_curves(csv_path: str | Path, out_png: str | Path) -> Path | None:
    """Plot loss/accuracy/energy/lr/host-memory columns of a run's metrics.csv against step.

    Returns the written PNG path, or None when the CSV is missing, unreadable or
    has no plottable column.
    """
    try:
        cols = read_csv_columns(Path(csv_path))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    panels = [(title, [c for c in names if c in cols]) for title, names in _CURVE_PANELS]
    panels = [(title, names) for title, names in panels if names]
    if not panels:
        return None
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(panels), 3.2), layout="constrained")
    for ax, (title, names) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for name in names:
            ax.plot(*cols[name], label=name, marker="." if len(cols[name][0]) < 30 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize="small")
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    return out


def _runs(metrics: dict) -> list[tuple[str, Path]]:
    """(label, run_dir) for the model and the baseline, when the directory exists."""
    found = []
    baseline = metrics.get("baseline")
    for label, entry in (("model", metrics), ("baseline", baseline)):
        run_dir = entry.get("run_dir") if isinstance(entry, dict) else None
        if isinstance(run_dir, str) and run_dir and Path(run_dir).is_dir():
            found.append((label, Path(run_dir)))
    return found


_FIGURE_ORDER = ("training_curves", "reliability", "ood_histograms", "samples_class_conditional",
                 "samples_replay_buffer", "training_samples")
_CAPTIONS = {"training_samples": "last training sample grid (replay buffer)",
             "samples_replay_buffer": "replay buffer at the checkpoint",
             "samples_class_conditional": "class-conditional samples, fresh chains (one row per class)"}


def _kind(png: Path) -> str:
    """The figure kind: the file stem without the ``baseline_`` prefix."""
    return png.stem.removeprefix("baseline_")


def _caption(png: Path) -> str:
    """Human-readable caption derived from an image filename: '<model|baseline>: <what>'."""
    label = "baseline" if png.stem.startswith("baseline_") else "model"
    return f"{label}: {_CAPTIONS.get(_kind(png), _kind(png).replace('_', ' '))}"


def _prepare_images(eval_dir: Path, runs: list[tuple[str, Path]]) -> list[list[Path]]:
    """Plot training curves (and copy a run's last sample grid when the evaluation wrote no buffer grid),
    then group every PNG in eval_dir by kind: [[model figure, baseline figure], ...] in a fixed order."""
    for label, run_dir in runs:
        prefix = "" if label == "model" else f"{label}_"
        plot_training_curves(run_dir / "metrics.csv", eval_dir / f"{prefix}training_curves.png")
        samples = sorted((run_dir / "samples").glob("*.png"))
        if samples and not (eval_dir / f"{prefix}samples_replay_buffer.png").is_file():
            shutil.copyfile(samples[-1], eval_dir / f"{prefix}training_samples.png")
    groups: dict[str, list[Path]] = {}
    for png in sorted(eval_dir.glob("*.png"), key=lambda p: p.stem.startswith("baseline_")):
        groups.setdefault(_kind(png), []).append(png)
    rank = {k: i for i, k in enumerate(_FIGURE_ORDER)}
    return [groups[k] for k in sorted(groups, key=lambda k: (rank.get(k, len(rank)), k))]


def _configs(runs: list[tuple[str, Path]]) -> list[tuple[str, str]]:
    """(label, YAML text) of each run's resolved config.yaml."""
    out = []
    for label, run_dir in runs:
        try:
            out.append((label, (run_dir / "config.yaml").read_text()))
        except (OSError, UnicodeDecodeError):
            continue
    return out


@dataclass(frozen=True)
class _Figure:
    """One PNG of eval_dir as the templates show it."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def caption(self) -> str:
        return _caption(self.path)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.path.read_bytes()).decode("ascii")


def _fence(text: str) -> str:
    """A Markdown code fence longer than any line of backticks inside ``text``."""
    return "`" * max(3, max((len(r) for r in text.split("\n") if set(r) == {"`"}), default=0) + 1)


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """The report templates (jemkit/templates/report.{html,md}.j2); HTML autoescaped, Markdown verbatim."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("jemkit", "templates"), autoescape=jinja2.select_autoescape(["html.j2"]),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["fence"] = _fence
    return env


def write_report(eval_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into eval_dir; return (html_path, md_path)."""
    eval_dir = Path(eval_dir)
    metrics = _read_metrics(eval_dir)
    rows, has_base = _metric_rows(metrics)
    runs = _runs(metrics)
    context = {"header": _header(metrics), "columns": ["metric", "model"] + (["baseline"] if has_base else []),
               "rows": [(key, [model, base] if has_base else [model]) for key, model, base in rows],
               "figures": [[_Figure(p) for p in group] for group in _prepare_images(eval_dir, runs)],
               "verdicts": _verdicts(metrics), "configs": _configs(runs)}
    paths = eval_dir / "report.html", eval_dir / "report.md"
    for path in paths:
        path.write_text(_templates().get_template(f"{path.name}.j2").render(context), encoding="utf-8")
    return paths


def best_ood_line(metrics: dict) -> str | None:
    """"flip: energy 0.9300, uniform: logp 1.0000 (mean 0.9650)" from ``ood_best``; None without one."""
    best = metrics.get("ood_best") if isinstance(metrics, dict) else None
    if not isinstance(best, dict):
        return None
    sets = [f"{name}: {b.get('score') or '—'} {_fmt(b.get('auroc'))}" for name, b in best.items() if isinstance(b, dict)]
    return ", ".join(sets) + f" (mean {_fmt(best.get('mean'))})"


def _verdicts(metrics: dict) -> list[tuple[str, str]]:
    """(label, best OOD score per set) for the model and, when evaluated, the baseline."""
    lines = [(label, best_ood_line(m)) for label, m in (("model", metrics), ("baseline", metrics.get("baseline")))]
    return [(label, line) for label, line in lines if line]


def _header(metrics: dict) -> list[tuple[str, str]]:
    """(label, text) lines above the tables: dataset, checkpoints, when the report was generated."""
    baseline = metrics.get("baseline") if isinstance(metrics.get("baseline"), dict) else {}
    header = [("dataset", str(metrics.get("dataset", "—"))), ("checkpoint", str(metrics.get("checkpoint", "—")))]
    if baseline:
        header.append(("baseline checkpoint", str(baseline.get("checkpoint", "—"))))
    return header + [("generated", datetime.now(timezone.utc).isoformat(timespec="seconds"))]


def _read_metrics(eval_dir: Path) -> dict:
    """eval_dir/metrics.json; a one-line error naming the command that writes it when it is missing or unreadable."""
    path = eval_dir / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"there is no evaluation in {eval_dir} (no metrics.json): "
                                f"run `jemkit eval CHECKPOINT --out {eval_dir}` first")
    try:
        metrics = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a JSON evaluation record ({err}): rerun `jemkit eval CHECKPOINT --out {eval_dir}`") from err
    if not isinstance(metrics, dict):
        raise ValueError(f"{path} is not a JSON evaluation record (a {type(metrics).__name__}, not an object): "
                         f"rerun `jemkit eval CHECKPOINT --out {eval_dir}`")
    return metrics


_CHECK_PAGE = """<!DOCTYPE html><html><body><pre id="out">pending</pre>
<iframe id="f" src="{src}" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {{
  var d = this.contentDocument, imgs = Array.from(d.images);
  document.getElementById("out").textContent = JSON.stringify({{
    images: imgs.length,
    loaded: imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length,
    tables: d.querySelectorAll("table").length,
    table_rows: d.querySelectorAll("table tr").length,
    title: d.title}});
}});
</script></body></html>"""


def browser_check(html_path: str | Path, chromium: str = "chromium", timeout: float = 120) -> dict:
    """Open a report in headless Chromium (no network) and count its images, the images that actually
    loaded (decoded, non-zero width), and its tables. Raises FileNotFoundError if Chromium is missing."""
    import os
    import subprocess
    import tempfile

    exe = shutil.which(chromium)
    if exe is None:
        raise FileNotFoundError(f"{chromium} not found (Debian: apt-get install chromium)")
    html_path = Path(html_path).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "check.html"
        page.write_text(_CHECK_PAGE.format(src=html_path.as_uri()))
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp}/profile", "--allow-file-access-from-files", "--virtual-time-budget=10000",
                 "--dump-dom", page.as_uri()]
        dom = subprocess.run([exe, *flags], capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, "HOME": tmp}).stdout
    start = dom.find('<pre id="out">')
    if start < 0:
        raise RuntimeError(f"Chromium did not render {html_path}")
    text = html.unescape(dom[start + len('<pre id="out">'): dom.find("</pre>", start)])
    if text == "pending":
        raise RuntimeError(f"{html_path} did not finish loading in Chromium")
    return json.loads(text)


_SUMMARY_ROWS = [("accuracy", "accuracy"), ("nll", "NLL"), ("calibration.ece", "ECE (20 bins)")]


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def summary_table(metrics: dict) -> str:
    """A short terminal table, JEM vs baseline: accuracy, NLL, ECE, and OOD AUROC per score (mean over sets)."""
    rows = [(label, _get(metrics, key), _get(metrics.get("baseline", {}), key)) for key, label in _SUMMARY_ROWS]
    for score in ("logp", "maxprob", "gradnorm"):
        def mean_auroc(m):
            vals = [s[score] for s in (m or {}).get("ood", {}).values() if s.get(score) is not None]
            return sum(vals) / len(vals) if vals else None
        rows.append((f"OOD AUROC {score} (mean)", mean_auroc(metrics), mean_auroc(metrics.get("baseline"))))
    rows.append(("OOD AUROC best score (mean)", _get(metrics, "ood_best.mean"), _get(metrics.get("baseline") or {}, "ood_best.mean")))
    fmt = lambda v: "—" if v is None else f"{v:.4f}"
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  {'JEM':>8}  {'baseline':>8}", "-" * (width + 20)]
    lines += [f"{name:<{width}}  {fmt(a):>8}  {fmt(b):>8}" for name, a, b in rows]
    return "\n".join(lines)
