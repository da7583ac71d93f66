"""The two tables a report opens with, read from metrics.json: the promises of the JEM lecture, model vs
baseline, kept or not (``PROMISES``, ``promise_rows``), and OOD detection as a sets × scores AUROC matrix
(``ood_matrix``); with the number helpers the report shares."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..evaluation.ood import auroc_standard_error

# ---------------------------------------------------------------------------------------------
# Numbers from metrics.json
# ---------------------------------------------------------------------------------------------

_SKIP_KEYS = {"baseline", "checkpoint", "run_dir"}


def get_key(d: Any, dotted: str) -> Any:
    """The value at a dotted key of nested dicts; None when any part is missing."""
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(d: Any, dotted: str) -> float | None:
    """The finite number at a dotted key; None when absent or not a number (a string such as
    "not computed: ...", a bool, NaN)."""
    value = get_key(d, dotted)
    return float(value) if is_number(value) else None


def flatten(tree: Any, prefix: str = "") -> dict[str, float | None]:
    """Dotted key -> value for every numeric (or null) leaf of a nested dict."""
    out: dict[str, float | None] = {}
    if not isinstance(tree, dict):
        return out
    for key, value in tree.items():
        if not prefix and key in _SKIP_KEYS:
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out[dotted] = value
    return out


def fmt(value: float | None) -> str:
    """Four decimals (scientific for very small/large magnitudes); missing -> em dash."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    if value == 0 or not math.isfinite(value) or 1e-3 <= abs(value) < 1e6:
        return f"{value:.4f}"
    return f"{value:.4e}"


def short(value: float | None) -> str:
    """A cell read at a glance: four decimals below 10, one up to 10⁴, none above; integers as they are;
    missing -> em dash."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 10:
        return f"{value:.4f}"
    if 10 <= abs(value) < 1e4:
        return f"{value:.1f}"
    return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.2e}"


# ---------------------------------------------------------------------------------------------
# The promises table: one rule per promise of the JEM lecture
# ---------------------------------------------------------------------------------------------

ACCURACY_SLACK = 0.01  # accuracy: the model may trail the baseline by this much
AGREEMENT_MIN, FID_MAX = 0.90, 150.0  # samples
OOD_MEAN_MIN = 0.95  # OOD detection: mean over sets of the best AUROC
NOISE_SETS = ("uniform", "gaussian")  # left out of the log p(x) promise
LOGP_MIN = 0.90  # OOD by log p(x), per non-noise set
ROBUST_MARGIN, ROBUST_EPS_MIN = 0.20, 0.05  # robustness: purified accuracy over the baseline's, at every ε ≥ this
DEFENDED = ("bpda", "full")  # the robustness suite's curves behind purification
PROBE_MARGIN = 0.05  # features: linear probe over a randomly initialized network's


@dataclass(frozen=True)
class Measured:
    """What a rule found: the model's and the baseline's cells, and whether the promise was kept
    (None: not judged, e.g. the rule needs the baseline and there is none)."""

    model: str
    baseline: str
    kept: bool | None


@dataclass(frozen=True)
class Promise:
    """A promise, the suite that measures it (None: no suite does), one line on how to read its row,
    and its rule ``judge(model_metrics, baseline_metrics or None) -> Measured``, or None when the model's
    keys are absent."""

    name: str
    suite: str | None
    how: str
    judge: Callable[[dict, dict | None], Measured | None]


@dataclass(frozen=True)
class PromiseRow:
    """One row of the promises table as the templates show it; ``kept`` is "yes", "no" or "—"."""

    promise: str
    model: str
    baseline: str
    kept: str
    how: str


def _all(conditions: Iterable[bool | None]) -> bool | None:
    """Three-valued and: False if any condition is False, else None if any is unknown, else True."""
    conditions = list(conditions)
    if any(c is False for c in conditions):
        return False
    return None if any(c is None for c in conditions) else True


def _at_least(value: float | None, bound: float | None) -> bool | None:
    """value ≥ bound, or None when either is missing."""
    return None if value is None or bound is None else value >= bound


def judge_accuracy(m: dict, b: dict | None) -> Measured | None:
    """Classification is not given up: kept if the model's test accuracy is at least the baseline's − 0.01."""
    acc, base = number(m, "accuracy"), number(b, "accuracy")
    if acc is None:
        return None
    return Measured(short(acc), short(base), _at_least(acc, None if base is None else base - ACCURACY_SLACK))


def judge_calibration(m: dict, b: dict | None) -> Measured | None:
    """Better calibrated: kept if the model's ECE is at most the baseline's (lower is better)."""
    ece, base = number(m, "calibration.ece"), number(b, "calibration.ece")
    if ece is None:
        return None
    return Measured(short(ece), short(base), _at_least(base, ece))


def _samples(t: dict | None) -> tuple[float | None, float | None]:
    return number(t, "samples.class_agreement"), number(t, "samples.quality.fid_inception")


def _samples_text(agreement: float | None, fid: float | None) -> str:
    if agreement is None and fid is None:
        return "—"
    return f"agreement {short(agreement)} · FID {'not computed' if fid is None else short(fid)}"


def judge_samples(m: dict, b: dict | None) -> Measured | None:
    """It generates: kept if at least 90% of fresh class-conditional samples are classified as their class
    and the Inception FID of unconditional samples is under 150 (the model's own; the baseline's is shown)."""
    agreement, fid = _samples(m)
    if agreement is None and fid is None:
        return None
    kept = _all([_at_least(agreement, AGREEMENT_MIN), None if fid is None else fid < FID_MAX])
    return Measured(_samples_text(agreement, fid), _samples_text(*_samples(b)), kept)


def _ood_best(t: dict | None) -> tuple[float | None, dict[str, float]]:
    """(``ood_best.mean``, set -> best AUROC over scores)."""
    best = get_key(t, "ood_best")
    sets = {name: number(v, "auroc") for name, v in best.items() if name != "mean"} if isinstance(best, dict) else {}
    return number(t, "ood_best.mean"), {name: a for name, a in sets.items() if a is not None}


def _worst(by_set: dict[str, float]) -> str:
    name = min(by_set, key=by_set.get)
    return f"worst {name} {short(by_set[name])}"


def _ood_text(mean: float | None, by_set: dict[str, float]) -> str:
    parts = ([f"mean {short(mean)}"] if mean is not None else []) + ([_worst(by_set)] if by_set else [])
    return " · ".join(parts) or "—"


def _ood_tolerance(t: dict | None, name: str, a: float) -> float:
    """One standard error of the AUROC ``a`` on OOD set ``name`` (``auroc_standard_error`` from ``ood_sizes``), 0
    when the sizes are not recorded (metrics written before they were)."""
    n_in, n_out = number(t, "ood_sizes.test"), number(t, f"ood_sizes.{name}")
    return auroc_standard_error(a, int(n_in), int(n_out)) if n_in and n_out else 0.0


def judge_ood(m: dict, b: dict | None) -> Measured | None:
    """It tells in- from out-of-distribution: kept if the mean over OOD sets of the best AUROC (any score) is at
    least 0.95 and, on every set both were scored on, the model's best AUROC is at least the baseline's, less one
    standard error of the baseline's AUROC (Hanley & McNeil 1982): a tie at 0.9990 against 0.9993 is a tie."""
    mean, by_set = _ood_best(m)
    if mean is None and not by_set:
        return None
    base_mean, base_by_set = _ood_best(b)
    common = [s for s in by_set if s in base_by_set]
    behind = [s for s in common if by_set[s] < base_by_set[s] - _ood_tolerance(b, s, base_by_set[s])]
    text = _ood_text(mean, by_set) + (f" · below the baseline on {', '.join(behind)}" if behind else "")
    kept = _all([_at_least(mean, OOD_MEAN_MIN), not behind if common else None])
    return Measured(text, _ood_text(base_mean, base_by_set), kept)


def _logp_aurocs(t: dict | None) -> dict[str, float]:
    """Non-noise OOD set -> AUROC of the ``logp`` score."""
    ood = get_key(t, "ood")
    found = {name: number(v, "logp") for name, v in ood.items() if name not in NOISE_SETS} if isinstance(ood, dict) else {}
    return {name: a for name, a in found.items() if a is not None}


def _logp_text(by_set: dict[str, float]) -> str:
    if not by_set:
        return "—"
    low = [s for s, a in by_set.items() if a < LOGP_MIN]
    return f"{_worst(by_set)} of {len(by_set)} sets" + (f" · below {LOGP_MIN:.2f} on {', '.join(low)}" if low else "")


def judge_ood_logp(m: dict, b: dict | None) -> Measured | None:
    """Its own density flags outliers: kept if the model's log p(x) score reaches AUROC 0.90 on every OOD set
    that is not noise (all but uniform and gaussian, which any score rejects)."""
    by_set = _logp_aurocs(m)
    if not by_set:
        return None
    return Measured(_logp_text(by_set), _logp_text(_logp_aurocs(b)), all(a >= LOGP_MIN for a in by_set.values()))


def _inpainting(t: dict | None) -> dict[str, tuple[float, float | None, float | None]]:
    """Mask -> (MSE of the model's fill, of the training-mean fill, of the Gaussian fill), from the inpainting suite."""
    result = get_key(t, "inpainting")
    if not isinstance(result, dict):
        return {}
    masks = {name: (number(v, "mse"), number(v, "mean_fill_mse"), number(v, "gaussian_fill_mse")) for name, v in result.items()}
    return {name: fills for name, fills in masks.items() if fills[0] is not None}


def _inpainting_text(by_mask: dict[str, tuple[float, float | None, float | None]]) -> str:
    return " · ".join(f"{name} {short(mse)} vs mean fill {short(fill)}" + ("" if gauss is None else f", Gaussian {short(gauss)}")
                      for name, (mse, fill, gauss) in by_mask.items()) or "—"


def judge_inpainting(m: dict, b: dict | None) -> Measured | None:
    """It fills in missing data: kept if, on every mask, the MSE over the missing pixels of the model's fill
    (the mean of its completions) is below that of the per-pixel training mean."""
    by_mask = _inpainting(m)
    if not by_mask:
        return None
    kept = _all(None if mean_fill is None else mse < mean_fill for mse, mean_fill, _ in by_mask.values())
    return Measured(_inpainting_text(by_mask), _inpainting_text(_inpainting(b)), kept)


def _likelihood_text(t: dict | None) -> str:
    bpd = number(t, "likelihood.bpd")
    if bpd is None:
        return "—"
    reverse, stderr = number(t, "likelihood.bpd_reverse"), number(t, "likelihood.bpd_stderr")
    ess, chains = number(t, "likelihood.ess"), number(t, "likelihood.n_chains")
    if reverse is not None:
        text = f"{short(bpd)} – {short(reverse)} bits/dim (forward – reverse AIS)"
    else:
        text = f"{short(bpd)} bits/dim" + (f" ± {short(stderr)}" if stderr is not None else "")
    text += f" · ESS {ess:.0f} of {chains:.0f} chains" if ess is not None and chains is not None else ""
    if get_key(t, "likelihood.base") == "gaussian":
        text += " · a tilted Gaussian, N(x) e^{−E(x)}"
    gauss = number(t, "likelihood.bpd_gaussian")
    return text + (f" · Gaussian {short(gauss)}" if gauss is not None else "")


def judge_likelihood(m: dict, b: dict | None) -> Measured | None:
    """It has a good likelihood: kept if the test bits/dim at the pessimistic end of the AIS sandwich (the larger
    of the forward and reverse estimates; the forward one when there is no reverse) beat a Gaussian fitted to
    the training images, and its log p(x) ranks the test images above the OOD sets (``judge_ood_logp``). Not
    judged when either is unknown, unless the bits/dim already fail."""
    if number(m, "likelihood.bpd") is None:
        return None
    beats = get_key(m, "likelihood.beats_gaussian")
    beats = beats if isinstance(beats, bool) else None
    ranking = judge_ood_logp(m, None)
    text = _likelihood_text(m) + (f" · log p(x) on OOD sets: {ranking.model}" if ranking is not None
                                  else " · log p(x) on OOD sets not measured (suite ood)")
    kept = False if beats is False else None if beats is None or ranking is None else ranking.kept
    return Measured(text, _likelihood_text(b), kept)


def _purified(t: dict | None, curves: Iterable[str]) -> dict[float, float]:
    """ε -> the lowest L∞ accuracy over ``curves`` present in ``robustness.linf`` (the strongest attack measured)."""
    entry = get_key(t, "robustness.linf")
    eps = entry.get("eps") if isinstance(entry, dict) else None
    if not isinstance(eps, list):
        return {}
    found = [entry[c] for c in curves if isinstance(entry.get(c), list) and len(entry[c]) == len(eps)]
    return {float(e): min(c[k] for c in found) for k, e in enumerate(eps)
            if found and is_number(e) and all(is_number(c[k]) for c in found)}


def _baseline_purified(b: dict | None) -> tuple[dict[float, float], str]:
    """The baseline behind the model's purifier (curves ``<gradient>_by_model``) when measured, else behind its own."""
    by_model = _purified(b, [f"{g}_by_model" for g in DEFENDED])
    return (by_model, "model's purifier") if by_model else (_purified(b, DEFENDED), "own purifier")


def _curve_text(acc: dict[float, float], eps: list[float]) -> str:
    """'0.8200 / 0.4100 at ε 0.02 / 0.05': accuracies at the ε's given; an em dash when there are none."""
    if not eps:
        return "—"
    return f"{' / '.join(short(acc[e]) for e in eps)} at ε {' / '.join(f'{e:g}' for e in eps)}"


def judge_robustness(m: dict, b: dict | None) -> Measured | None:
    """Purification defends it: kept if, at every L∞ ε ≥ 0.05 both were attacked at, the model's accuracy behind
    its purifier (the stronger of the attacks measured on it) is at least the baseline's + 0.20, the baseline
    purified by the model's purifier when the suite measured that, else by its own."""
    model = _purified(m, DEFENDED)
    if not model:
        return None
    base, how = _baseline_purified(b)
    shown = sorted(e for e in model if e > 0) or [max(model)]
    text = _curve_text(model, shown)
    base_text = _curve_text(base, [e for e in shown if e in base] or sorted(base)[-1:])
    base_text = "—" if base_text == "—" else f"{base_text} ({how})"
    judged = [e for e in model if e >= ROBUST_EPS_MIN and e in base]
    kept = all(model[e] >= base[e] + ROBUST_MARGIN for e in judged) if judged else None
    return Measured(text, base_text, kept)


def _features_text(t: dict | None) -> str:
    probe = number(t, "features.probe_accuracy")
    if probe is None:
        return "—"
    random_init, per_class = number(t, "features.random_init_probe_accuracy"), number(t, "features.labels_per_class")
    return (f"probe {short(probe)} vs random init {short(random_init)}"
            + (f" · {per_class:.0f} labels/class" if per_class is not None else ""))


def judge_features(m: dict, b: dict | None) -> Measured | None:
    """It learns features: kept if a linear probe on the model's features is at least 0.05 more accurate than
    the same probe on a randomly initialized network."""
    probe, random_init = number(m, "features.probe_accuracy"), number(m, "features.random_init_probe_accuracy")
    if probe is None:
        return None
    kept = _at_least(probe, None if random_init is None else random_init + PROBE_MARGIN)
    return Measured(_features_text(m), _features_text(b), kept)


def _values_text(value: Any) -> str:
    if is_number(value):
        return short(float(value))
    if isinstance(value, dict):
        return " · ".join(f"{k} {short(v)}" for k, v in flatten(value).items()) or "—"
    return "—" if value is None else str(value)


def judge_semi_supervised(m: dict, b: dict | None) -> Measured | None:
    """It learns from unlabelled images: no suite measures it; ``semi_supervised`` is shown when metrics.json
    has it, never judged."""
    if "semi_supervised" not in m:
        return None
    return Measured(_values_text(m["semi_supervised"]), _values_text((b or {}).get("semi_supervised")), None)


PROMISES: list[Promise] = [
    Promise("accuracy", "accuracy", f"test accuracy; kept if ≥ the baseline's − {ACCURACY_SLACK:g}", judge_accuracy),
    Promise("calibration", "calibration", "expected calibration error (ECE), lower is better; kept if ≤ the baseline's",
            judge_calibration),
    Promise("samples", "samples", f"share of class-conditional samples classified as their class; Inception FID of "
            f"unconditional samples (lower is better); kept if agreement ≥ {AGREEMENT_MIN:.2f} and FID < {FID_MAX:g}",
            judge_samples),
    Promise("OOD detection", "ood", f"AUROC of the best score per OOD set (1 separates all, 0.5 is chance); kept if its "
            f"mean ≥ {OOD_MEAN_MIN:.2f} and it is ≥ the baseline's on every set (less one standard error of the baseline's)",
            judge_ood),
    Promise("OOD by the model's log p(x)", "ood", f"AUROC of the logp score on the OOD sets that are not noise "
            f"(all but {' and '.join(NOISE_SETS)}); kept if ≥ {LOGP_MIN:.2f} on each", judge_ood_logp),
    Promise("missing data", "inpainting", "MSE on the missing pixels (lower is better) of the model's fill vs the "
            "training-mean fill (and the Gaussian conditional-mean fill its chains may start from), per mask; kept if the "
            "model's is below the mean fill's on every mask", judge_inpainting),
    Promise("likelihood", "likelihood", "test bits/dim (lower is better) between the forward AIS estimate and the reverse one "
            "(the gap is the estimate's precision; an ESS far below the number of chains means it is unreliable); kept if "
            "the reverse end beats a Gaussian fitted to the training images and its log p(x) reaches AUROC "
            f"{LOGP_MIN:.2f} on every OOD set that is not noise (as in the row above)", judge_likelihood),
    Promise("robustness", "robustness", f"L∞ PGD accuracy behind purification at each ε (the stronger attack); "
            f"kept if ≥ the baseline's + {ROBUST_MARGIN:.2f} at every ε ≥ {ROBUST_EPS_MIN:g}", judge_robustness),
    Promise("features", "features", f"linear-probe accuracy on the model's features vs on a randomly initialized "
            f"network; kept if ≥ random init + {PROBE_MARGIN:.2f}", judge_features),
    Promise("semi-supervised", None, "training with few labels (data.labels_per_class, see the README); no eval suite "
            "measures it, so it is not judged",
            judge_semi_supervised),
]


def promise_rows(metrics: dict) -> list[PromiseRow]:
    """The promises table: one row per entry of ``PROMISES``, "not measured" (and by which suite) when the
    model's keys are absent."""
    baseline = metrics.get("baseline") if isinstance(metrics.get("baseline"), dict) else None
    rows = []
    for p in PROMISES:
        found = p.judge(metrics, baseline)
        if found is None:
            missing = f"not measured (suite {p.suite})" if p.suite else "not measured here (see README)"
            rows.append(PromiseRow(p.name, missing, "", "—", p.how))
        else:
            kept = {True: "yes", False: "no", None: "—"}[found.kept]
            rows.append(PromiseRow(p.name, found.model, found.baseline, kept, p.how))
    return rows


# ---------------------------------------------------------------------------------------------
# OOD detection: sets × scores
# ---------------------------------------------------------------------------------------------

_SCORE_ORDER = ("maxprob", "energy", "logp", "gradnorm")


@dataclass(frozen=True)
class OODMatrix:
    """AUROC per OOD set (rows) and score (columns) for one model; a cell is (text, best in its row)."""

    label: str
    scores: list[str]
    rows: list[tuple[str, list[tuple[str, bool]]]]
    mean_best: str | None


def ood_matrix(label: str, metrics: dict | None) -> OODMatrix | None:
    """The ``ood`` AUROCs of one model as a matrix, every cell equal to its row's highest AUROC marked best
    (logp and energy tie when both temperatures are 1); None without ``ood``."""
    ood = get_key(metrics, "ood")
    sets = {name: v for name, v in ood.items() if isinstance(v, dict)} if isinstance(ood, dict) else {}
    if not sets:
        return None
    seen = list(dict.fromkeys(s for by_score in sets.values() for s in by_score))
    scores = [s for s in _SCORE_ORDER if s in seen] + [s for s in seen if s not in _SCORE_ORDER]
    rows = []
    for name, by_score in sets.items():
        cells = [number(by_score, s) for s in scores]
        best = max((c for c in cells if c is not None), default=None)
        rows.append((name, [("—", False) if c is None else (f"{c:.4f}", c == best) for c in cells]))
    mean = number(metrics, "ood_best.mean")
    return OODMatrix(label, scores, rows, None if mean is None else f"{mean:.4f}")
