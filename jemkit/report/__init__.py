"""Turn a ``jemkit eval`` output directory into a self-contained report.

``write_report(eval_dir)`` reads ``eval_dir/metrics.json`` (the model's metrics at the top level, the
baseline's under ``baseline``) and, when present, the training run directories it points to, then
writes ``report.html`` (inline CSS, images embedded as ``data:`` URIs, no scripts, no external URLs)
and ``report.md`` (images referenced by filename relative to ``eval_dir``), rendered by Jinja2 from
``jemkit/templates/report.{html,md}.j2`` (the HTML one autoescaped). Both show, in this order:

1. the promises table (``tables.PROMISES``): one row per promise of the JEM lecture, model vs
   baseline, kept or not, and one line on how to read it; a promise whose keys are absent says
   "not measured" and which suite measures it;
2. OOD detection as a sets × scores matrix of AUROCs (``tables.ood_matrix``), the best score per
   set in bold, the model's then the baseline's;
3. the figures, a model figure and its baseline twin (``X.png``, ``baseline_X.png``) side by side,
   sample grids scaled up with crisp pixels; training curves are first plotted from each run's
   ``metrics.csv`` so every image lives in ``eval_dir``;
4. folded away (HTML ``<details>``; Markdown under "Raw metrics"): every numeric key of
   metrics.json and the runs' resolved configs.
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

import jinja2

from .tables import flatten, fmt, get_key, ood_matrix, promise_rows

# ---------------------------------------------------------------------------------------------
# Figures and configs
# ---------------------------------------------------------------------------------------------

_CURVE_PANELS = (("loss", ("loss", "ce")), ("accuracy", ("acc", "test_acc")),
                 ("energy", ("e_data", "e_sample", "gap")), ("learning rate", ("lr",)),
                 ("host memory, MiB", ("rss_mb", "peak_rss_mb")))


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


# the order of the promises table; kinds not listed follow, by name
_FIGURE_ORDER = ("samples_class_conditional", "samples_unconditional", "samples_replay_buffer", "training_samples",
                 "reliability", "ood_histograms", "inpainting", "likelihood_ais_samples", "robustness", "distal",
                 "training_curves")
_CAPTIONS = {"training_samples": "last training sample grid (replay buffer)",
             "samples_replay_buffer": "replay buffer at the checkpoint",
             "samples_class_conditional": "class-conditional samples, fresh chains (one row per class)",
             "samples_unconditional": "unconditional samples, fresh chains (the ones FID scores)",
             "inpainting": "inpainting, per mask: masked / one completion / mean of completions / true",
             "likelihood_ais_samples": "AIS chains at the end of the path"}
_GRID_KINDS = {"inpainting", "distal"}  # image grids without "samples" in their name
_SIDE_BY_SIDE_MAX_PX = 900  # wider PNGs get a row of their own


def _kind(png: Path) -> str:
    """The figure kind: the file stem without the ``baseline_`` prefix."""
    return png.stem.removeprefix("baseline_")


def _caption(png: Path) -> str:
    """Human-readable caption derived from an image filename: '<model|baseline>: <what>'."""
    label = "baseline" if png.stem.startswith("baseline_") else "model"
    return f"{label}: {_CAPTIONS.get(_kind(png), _kind(png).replace('_', ' '))}"


def _png_width(png: Path) -> int:
    """The pixel width in a PNG's header; 0 for a file that is not a PNG."""
    with open(png, "rb") as fh:
        head = fh.read(24)
    return int.from_bytes(head[16:20], "big") if head.startswith(b"\x89PNG\r\n\x1a\n") else 0


def _rows(group: list[Path]) -> list[list[Path]]:
    """A model figure and its baseline twin side by side, or one above the other when either is wider than
    ``_SIDE_BY_SIDE_MAX_PX`` (a multi-panel plot at half the page is too small to read)."""
    if all(_png_width(p) <= _SIDE_BY_SIDE_MAX_PX for p in group):
        return [group]
    return [[p] for p in group]


def _prepare_images(eval_dir: Path, runs: list[tuple[str, Path]]) -> list[list[Path]]:
    """Plot training curves (and copy a run's last sample grid when the evaluation wrote no buffer grid),
    then group every PNG in eval_dir by kind, in a fixed order, into rows of the page: [model figure,
    baseline figure] side by side, or each on its own row when wide."""
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
    return [row for k in sorted(groups, key=lambda k: (rank.get(k, len(rank)), k)) for row in _rows(groups[k])]


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
    def grid(self) -> bool:
        """A grid of images (scaled up with crisp pixels), not a plot."""
        return "samples" in _kind(self.path) or _kind(self.path) in _GRID_KINDS

    @property
    def base64(self) -> str:
        return base64.b64encode(self.path.read_bytes()).decode("ascii")


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------


def _metric_rows(metrics: dict) -> tuple[list[tuple[str, str, str]], bool]:
    """Raw table rows (key, model, baseline) and whether a baseline exists."""
    baseline = metrics.get("baseline")
    has_base = isinstance(baseline, dict)
    model, base = flatten(metrics), flatten(baseline if has_base else {})
    keys = list(model) + [k for k in base if k not in model]
    return [(k, fmt(model.get(k)), fmt(base.get(k))) for k in keys], has_base


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


def _fence(text: str) -> str:
    """A Markdown code fence longer than any line of backticks inside ``text``."""
    return "`" * max(3, max((len(r) for r in text.split("\n") if set(r) == {"`"}), default=0) + 1)


def _md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """The report templates (jemkit/templates/report.{html,md}.j2); HTML autoescaped, Markdown verbatim."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("jemkit", "templates"), autoescape=jinja2.select_autoescape(["html.j2"]),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["fence"] = _fence
    env.filters["md_cell"] = _md_cell
    return env


def write_report(eval_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into eval_dir; return (html_path, md_path)."""
    eval_dir = Path(eval_dir)
    metrics = _read_metrics(eval_dir)
    rows, has_base = _metric_rows(metrics)
    runs = _runs(metrics)
    matrices = [ood_matrix("model", metrics), ood_matrix("baseline", metrics.get("baseline") if has_base else None)]
    context = {"header": _header(metrics), "has_base": has_base, "promises": promise_rows(metrics),
               "ood": [m for m in matrices if m is not None],
               "figures": [[_Figure(p) for p in row] for row in _prepare_images(eval_dir, runs)],
               "columns": ["metric", "model"] + (["baseline"] if has_base else []),
               "rows": [(key, [model, base] if has_base else [model]) for key, model, base in rows],
               "configs": _configs(runs)}
    paths = eval_dir / "report.html", eval_dir / "report.md"
    for path in paths:
        path.write_text(_templates().get_template(f"{path.name}.j2").render(context), encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------
# Headless-Chromium checks of a written report
# ---------------------------------------------------------------------------------------------

_CHECK_PAGE = """<!DOCTYPE html><html><body><pre id="out">pending</pre>
<iframe id="f" src="{src}" style="width:{width}px;height:900px"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {{
  var d = this.contentDocument, imgs = Array.from(d.images), first = d.querySelector("table");
  document.getElementById("out").textContent = JSON.stringify({{
    images: imgs.length,
    loaded: imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length,
    widths: imgs.map(function (i) {{ return [i.alt, Math.round(i.getBoundingClientRect().width)]; }}),
    tables: d.querySelectorAll("table").length,
    table_rows: d.querySelectorAll("table tr").length,
    first_table: first ? first.className : null,
    folded: d.querySelectorAll("details:not([open])").length,
    scripts: d.scripts.length,
    title: d.title}});
}});
</script></body></html>"""
_CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--allow-file-access-from-files", "--hide-scrollbars")


def _chromium(chromium: str, args: list[str], timeout: float) -> str:
    """Run headless Chromium (no network, a throwaway profile) with ``args``; its stdout."""
    import os
    import subprocess
    import tempfile

    exe = shutil.which(chromium)
    if exe is None:
        raise FileNotFoundError(f"{chromium} not found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        flags = [*_CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", *args]
        return subprocess.run([exe, *flags], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HOME": tmp}).stdout


def browser_check(html_path: str | Path, chromium: str = "chromium", timeout: float = 120, width: int = 1200) -> dict:
    """Open a report in headless Chromium (no network) in a ``width``-pixel frame and report its images (how many,
    how many decoded with a non-zero width, each one's alt text and rendered CSS width), its tables (how many,
    their rows, the class of the first), its folded ``<details>``, scripts and title.
    Raises FileNotFoundError if Chromium is missing."""
    import tempfile

    html_path = Path(html_path).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "check.html"
        page.write_text(_CHECK_PAGE.format(src=html_path.as_uri(), width=width))
        dom = _chromium(chromium, ["--virtual-time-budget=10000", "--dump-dom", page.as_uri()], timeout)
    start = dom.find('<pre id="out">')
    if start < 0:
        raise RuntimeError(f"Chromium did not render {html_path}")
    text = html.unescape(dom[start + len('<pre id="out">'): dom.find("</pre>", start)])
    if text == "pending":
        raise RuntimeError(f"{html_path} did not finish loading in Chromium")
    return json.loads(text)


def browser_screenshot(html_path: str | Path, png_path: str | Path, chromium: str = "chromium", timeout: float = 120,
                       size: tuple[int, int] = (1200, 2000)) -> Path:
    """A PNG screenshot of the top ``size`` (width, height) pixels of a page in headless Chromium."""
    png_path = Path(png_path).resolve()
    _chromium(chromium, [f"--window-size={size[0]},{size[1]}", f"--screenshot={png_path}", "--virtual-time-budget=10000",
                         Path(html_path).resolve().as_uri()], timeout)
    if not png_path.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot of {html_path}")
    return png_path


# ---------------------------------------------------------------------------------------------
# The terminal summary
# ---------------------------------------------------------------------------------------------

_SUMMARY_ROWS = [("accuracy", "accuracy"), ("nll", "NLL"), ("calibration.ece", "ECE (20 bins)")]


def summary_table(metrics: dict) -> str:
    """A short terminal table, JEM vs baseline: accuracy, NLL, ECE, and OOD AUROC per score (mean over sets)."""
    rows = [(label, get_key(metrics, key), get_key(metrics.get("baseline", {}), key)) for key, label in _SUMMARY_ROWS]
    for score in ("logp", "maxprob", "gradnorm"):
        def mean_auroc(m):
            vals = [s[score] for s in (m or {}).get("ood", {}).values() if s.get(score) is not None]
            return sum(vals) / len(vals) if vals else None
        rows.append((f"OOD AUROC {score} (mean)", mean_auroc(metrics), mean_auroc(metrics.get("baseline"))))
    rows.append(("OOD AUROC best score (mean)", get_key(metrics, "ood_best.mean"), get_key(metrics.get("baseline") or {}, "ood_best.mean")))
    cell = lambda v: "—" if v is None else f"{v:.4f}"
    width = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{width}}  {'JEM':>8}  {'baseline':>8}", "-" * (width + 20)]
    lines += [f"{name:<{width}}  {cell(a):>8}  {cell(b):>8}" for name, a, b in rows]
    return "\n".join(lines)
