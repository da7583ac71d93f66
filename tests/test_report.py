"""Tests for jemkit.report: HTML/Markdown report from a fake evaluation directory, and the promises rules
(jemkit.report.tables) on tiny hand-written metrics."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from jemkit.cli import main
from jemkit.report import plot_training_curves, write_report
from jemkit.report.tables import PROMISES, judge_robustness, promise_rows

PNG_SIG = b"\x89PNG\r\n\x1a\n"
CONFIG_TEXT = "model:\n  net: small_cnn\ntrain:\n  steps: 20\n  lr: 0.001\n"


def _png(path: Path, value: float = 0.0) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [value, 1 - value])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=20)
    return path


def _run_dir(root: Path, name: str, config: str = CONFIG_TEXT) -> Path:
    run = root / name
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text(config)
    (run / "metrics.csv").write_text(
        "step,loss,ce,acc,e_data,e_sample,gap,lr,test_acc\n"
        "10,2.0,1.5,0.5,-1.0,0.5,1.5,0.001,\n"
        "15,,,,,,,,0.6\n"
        "20,1.0,0.8,0.8,-2.0,0.1,2.1,0.001,0.85\n")
    _png(run / "samples" / "step_000010.png", 0.1)
    _png(run / "samples" / "step_000020.png", 0.9)
    return run


def _metrics(run_dir: str, baseline: dict | None) -> dict:
    m = {"checkpoint": f"{run_dir}/checkpoints/step_000020.safetensors", "run_dir": run_dir,
         "dataset": "digits", "accuracy": 0.95123, "nll": 0.17, "calibration": {"ece": 0.031, "bins": 20},
         "ood": {"uniform": {"logp": 0.99, "maxprob": 0.9, "gradnorm": None},
                 "flip": {"logp": 0.7, "maxprob": 0.6, "gradnorm": 0.65}},
         "sampling": {"mean_energy": -3.5, "note": "text is skipped", "flags": [1, 2]}}
    if baseline is not None:
        m["baseline"] = baseline
    return m


def _img_payloads(html_text: str) -> list[bytes]:
    return [base64.b64decode(p) for p in
            re.findall(r'<img (?:class="grid" )?src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def _raw(html_text: str) -> str:
    """The folded raw-metrics table."""
    return html_text.split('<table class="raw">')[1].split("</table>")[0]


def _row(html_text: str, key: str) -> str:
    m = re.search(rf"<tr><td>{re.escape(key)}</td>(.*?)</tr>", _raw(html_text))
    assert m, f"no table row for {key}"
    return m.group(1)


@pytest.fixture
def eval_with_baseline(tmp_path: Path) -> Path:
    run = _run_dir(tmp_path, "run")
    base = _run_dir(tmp_path, "base_run", config="model:\n  net: baseline_net\n")
    ev = tmp_path / "eval"
    ev.mkdir()
    baseline = {"checkpoint": f"{base}/ckpt.safetensors", "run_dir": str(base), "accuracy": 0.97,
                "nll": 0.1, "calibration": {"ece": 0.02, "bins": 20},
                "ood": {"uniform": {"logp": 0.5, "maxprob": 0.88}},  # gradnorm, flip absent
                "extra_only_in_baseline": 1.5}
    (ev / "metrics.json").write_text(json.dumps(_metrics(str(run), baseline)))
    _png(ev / "reliability.png")
    _png(ev / "baseline_reliability.png")
    _png(ev / "ood_histograms.png")
    return ev


def test_report_with_baseline(eval_with_baseline: Path) -> None:
    ev = eval_with_baseline
    html_path, md_path = write_report(ev)
    assert html_path == ev / "report.html" and md_path == ev / "report.md"
    html_text, md = html_path.read_text(), md_path.read_text()

    assert "jemkit report" in html_text and "digits" in html_text
    assert "step_000020.safetensors" in html_text and "ckpt.safetensors" in html_text
    # in order: promises, OOD matrices, figures, then raw metrics and configs folded away
    marks = ['<table class="promises">', "<h2>Out-of-distribution detection</h2>", "<h2>Figures</h2>",
             '<details><summary>every number in metrics.json', '<table class="raw">', "<details><summary>configuration: model"]
    assert [html_text.index(m) for m in marks] == sorted(html_text.index(m) for m in marks)
    assert html_text.index("<table") == html_text.index('<table class="promises">')
    assert "<th>baseline</th>" in html_text.split('<table class="promises">')[1].split("</tr>")[0]
    md_marks = ["## Promises", "## Out-of-distribution detection", "## Figures", "## Raw metrics", "### Configuration: model"]
    assert [md.index(m) for m in md_marks] == sorted(md.index(m) for m in md_marks)
    assert "| accuracy | 0.9512 | 0.9700 | no | test accuracy; kept if ≥ the baseline's − 0.01 |" in md
    expected = {"accuracy": ("0.9512", "0.9700"), "nll": ("0.1700", "0.1000"),
                "calibration.ece": ("0.0310", "0.0200"), "calibration.bins": ("20", "20"),
                "ood.uniform.logp": ("0.9900", "0.5000"), "ood.uniform.maxprob": ("0.9000", "0.8800"),
                "ood.uniform.gradnorm": ("—", "—"), "ood.flip.gradnorm": ("0.6500", "—"),
                "sampling.mean_energy": ("-3.5000", "—"), "extra_only_in_baseline": ("—", "1.5000")}
    raw_md = md.split("## Raw metrics")[1]
    for key, (model, base) in expected.items():
        assert _row(html_text, key) == f'<td class="num">{model}</td><td class="num">{base}</td>'
        assert f"| {key} | {model} | {base} |" in raw_md
    for excluded in ("checkpoint", "run_dir", "dataset", "sampling.note", "sampling.flags", "baseline."):
        assert f"<tr><td>{excluded}" not in _raw(html_text)
        assert f"| {excluded}" not in raw_md

    # training curves and last training sample grids were produced in eval_dir
    for name in ("training_curves.png", "baseline_training_curves.png",
                 "training_samples.png", "baseline_training_samples.png"):
        assert (ev / name).read_bytes().startswith(PNG_SIG)
    assert (ev / "training_samples.png").read_bytes() == (ev.parent / "run/samples/step_000020.png").read_bytes()

    # figures in a fixed order by kind (samples first), the model's and the baseline's side by side in one row,
    # unless wider than half the page can show (the training curves, 1600 px): then one above the other
    order = ["training_samples.png", "baseline_training_samples.png", "reliability.png", "baseline_reliability.png",
             "ood_histograms.png", "training_curves.png", "baseline_training_curves.png"]
    assert sorted(order) == sorted(p.name for p in ev.glob("*.png"))
    payloads = _img_payloads(html_text)
    assert len(payloads) == html_text.count("<img ") == len(order)
    assert payloads == [(ev / n).read_bytes() for n in order]
    rows = re.findall(r'<div class="row">(.*?)</div>', html_text, re.S)
    assert [r.count("<img ") for r in rows] == [2, 2, 1, 1, 1]
    assert "model: reliability" in rows[1] and "baseline: reliability" in rows[1]
    assert "model: last training sample grid (replay buffer)" in html_text
    assert rows[0].count('<img class="grid"') == 2 and 'class="grid"' not in "".join(rows[1:])
    for name in order:
        assert re.search(rf"!\[[^\]]+\]\({re.escape(name)}\)", md), name
    assert "![model: reliability](reliability.png)" in md

    assert "http://" not in html_text and "https://" not in html_text
    assert "<script" not in html_text.lower() and "<link" not in html_text.lower()
    assert "<pre>model:\n  net: small_cnn" in html_text and "net: baseline_net" in html_text
    assert "```yaml\nmodel:\n  net: small_cnn" in md


def test_report_without_baseline_and_missing_run_dir(tmp_path: Path) -> None:
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "metrics.json").write_text(json.dumps(_metrics(str(tmp_path / "does_not_exist"), None)))
    _png(ev / "reliability.png")
    html_path, md_path = write_report(ev)
    html_text, md = html_path.read_text(), md_path.read_text()
    assert "<th>baseline</th>" not in html_text and "baseline checkpoint" not in html_text
    assert "<tr><th>promise</th><th>model</th><th>kept?</th><th>how to read it</th></tr>" in html_text
    assert _row(html_text, "accuracy") == '<td class="num">0.9512</td>'
    assert _row(html_text, "ood.uniform.gradnorm") == '<td class="num">—</td>'
    assert "| promise | model | kept? | how to read it |\n|---|---|---|---|\n" in md
    assert "| accuracy | 0.9512 | — | test accuracy" in md  # kept needs the baseline
    assert "| metric | model |\n|---|---|\n" in md and "| accuracy | 0.9512 |" in md.split("## Raw metrics")[1]
    assert not list(ev.glob("*training_curves.png")) and not list(ev.glob("*training_samples.png"))
    payloads = _img_payloads(html_text)
    assert len(payloads) == 1 and payloads[0].startswith(PNG_SIG)
    assert "<pre>" not in html_text


def test_text_is_escaped(tmp_path: Path) -> None:
    ev = tmp_path / "eval"
    ev.mkdir()
    run = _run_dir(tmp_path, "run", config="note: <b>&amp</b>\n")
    m = _metrics(str(run), None)
    m["dataset"] = "<script>x</script>"
    m["weird<key>"] = 1.0
    (ev / "metrics.json").write_text(json.dumps(m))
    html_path, md_path = write_report(ev)
    html_text = html_path.read_text()
    assert "<script>" not in html_text and "&lt;script&gt;x&lt;/script&gt;" in html_text
    assert "- **dataset:** <script>x</script>" in md_path.read_text()  # Markdown is written verbatim
    assert "<tr><td>weird&lt;key&gt;</td>" in html_text
    assert "note: &lt;b&gt;&amp;amp&lt;/b&gt;" in html_text


def test_report_without_an_evaluation_says_what_to_run(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"jemkit: error: there is no evaluation in {tmp_path} (no metrics.json): "
                   f"run `jemkit eval CHECKPOINT --out {tmp_path}` first\n")
    assert list(tmp_path.iterdir()) == []


def test_plot_training_curves(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("step,loss,acc,e_data,note\n1,2.0,0.1,,x\n2,,0.3,-1.0,y\n3,1.0,,-2.0,z\n")
    out = plot_training_curves(csv_path, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png" and out.read_bytes().startswith(PNG_SIG)
    assert plot_training_curves(tmp_path / "missing.csv", tmp_path / "a.png") is None
    (tmp_path / "empty.csv").write_text("step,note\n1,x\n")
    assert plot_training_curves(tmp_path / "empty.csv", tmp_path / "b.png") is None
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()


def test_ood_matrix_marks_the_best_score_per_set(tmp_path: Path) -> None:
    from jemkit.report import summary_table

    ev = tmp_path / "eval"
    ev.mkdir()
    base = {"accuracy": 0.9, "ood": {"flip": {"energy": 0.6, "maxprob": 0.6}},
            "ood_best": {"flip": {"score": "maxprob", "auroc": 0.6}, "mean": 0.6}}
    m = _metrics(str(tmp_path / "no_run"), base)
    m["ood"]["flip"]["energy"] = 0.7  # ties with logp: both are the best
    m["ood_best"] = {"uniform": {"score": "logp", "auroc": 0.99}, "flip": {"score": "logp", "auroc": 0.7}, "mean": 0.845}
    (ev / "metrics.json").write_text(json.dumps(m))
    html_path, md_path = write_report(ev)
    html_text, md = html_path.read_text(), md_path.read_text()
    tables = re.findall(r'<table class="ood">(.*?)</table>', html_text, re.S)
    assert len(tables) == 2  # model, baseline
    assert "<tr><th>OOD set</th><th>maxprob</th><th>energy</th><th>logp</th><th>gradnorm</th></tr>" in tables[0]
    assert ('<tr><td>uniform</td><td class="num">0.9000</td><td class="num">—</td>'
            '<td class="num"><b>0.9900</b></td><td class="num">—</td></tr>') in tables[0]
    assert ('<tr><td>flip</td><td class="num">0.6000</td><td class="num"><b>0.7000</b></td>'
            '<td class="num"><b>0.7000</b></td><td class="num">0.6500</td></tr>') in tables[0]
    assert '<tr><th>OOD set</th><th>maxprob</th><th>energy</th></tr>' in tables[1]
    assert '<td class="num"><b>0.6000</b></td><td class="num"><b>0.6000</b></td>' in tables[1]
    assert "<h3>model: mean of the best per set 0.8450</h3>" in html_text
    assert "| flip | 0.6000 | **0.7000** | **0.7000** | 0.6500 |" in md and "### baseline: mean of the best per set 0.6000" in md
    row = [r for r in summary_table(m).splitlines() if r.startswith("OOD AUROC best score (mean)")]
    assert len(row) == 1 and row[0].split()[-2:] == ["0.8450", "0.6000"]


def test_a_report_without_ood_has_no_ood_section(tmp_path: Path) -> None:
    ev = tmp_path / "eval"
    ev.mkdir()
    m = _metrics(str(tmp_path / "no_run"), None)
    del m["ood"]
    (ev / "metrics.json").write_text(json.dumps(m))
    html_path, md_path = write_report(ev)
    assert "Out-of-distribution" not in html_path.read_text() and "Out-of-distribution" not in md_path.read_text()
    assert "| OOD detection | not measured (suite ood) |" in md_path.read_text()


# ---------------------------------------------------------------- the promises rules, on tiny metrics


def _promise(metrics: dict, name: str):
    (row,) = [r for r in promise_rows(metrics) if r.promise == name]
    return row


def _kept(metrics: dict, name: str) -> str:
    return _promise(metrics, name).kept


def test_every_promise_has_a_rule_with_a_docstring_and_one_line_on_how_to_read_it() -> None:
    names = [p.name for p in PROMISES]
    assert names == ["accuracy", "calibration", "samples", "OOD detection", "OOD by the model's log p(x)", "missing data",
                     "likelihood", "robustness", "features", "semi-supervised"]
    for p in PROMISES:
        assert p.judge.__doc__ and p.how and "\n" not in p.how


def test_an_empty_evaluation_measures_no_promise_and_invents_no_number() -> None:
    rows = promise_rows({})
    assert [r.kept for r in rows] == ["—"] * len(PROMISES)
    assert [r.model for r in rows] == [f"not measured (suite {s})" for s in
                                       ("accuracy", "calibration", "samples", "ood", "ood", "inpainting", "likelihood",
                                        "robustness", "features")] + ["not measured here (see README)"]


@pytest.mark.parametrize("value", [True, "0.95", None, float("nan")])
def test_non_numbers_are_absent(value) -> None:
    row = _promise({"accuracy": value, "baseline": {"accuracy": 0.9}}, "accuracy")
    assert (row.model, row.kept) == ("not measured (suite accuracy)", "—")


def test_accuracy_and_calibration_against_the_baseline() -> None:
    assert _kept({"accuracy": 0.915, "baseline": {"accuracy": 0.92}}, "accuracy") == "yes"  # within 0.01
    assert _kept({"accuracy": 0.905, "baseline": {"accuracy": 0.92}}, "accuracy") == "no"
    row = _promise({"accuracy": 0.905}, "accuracy")
    assert (row.model, row.baseline, row.kept) == ("0.9050", "—", "—")  # no baseline: not judged
    assert _kept({"accuracy": 0.9, "baseline": {"calibration": {"ece": 0.1}}}, "accuracy") == "—"
    assert _kept({"calibration": {"ece": 0.02}, "baseline": {"calibration": {"ece": 0.03}}}, "calibration") == "yes"
    assert _kept({"calibration": {"ece": 0.04}, "baseline": {"calibration": {"ece": 0.03}}}, "calibration") == "no"
    assert _kept({"calibration": {"ece": 0.04}}, "calibration") == "—"


def test_samples_need_agreement_and_fid_of_the_model_itself() -> None:
    def samples(agreement, fid):
        return {"samples": {"class_agreement": agreement, "quality": {"fid_inception": fid}}}

    assert _kept(samples(0.95, 120.0), "samples") == "yes"  # no baseline needed
    assert _kept(samples(0.95, 150.0), "samples") == "no"
    assert _kept(samples(0.85, 20.0), "samples") == "no"
    row = _promise({**samples(0.95, "not computed: no Inception weights"), "baseline": samples(1.0, 300.0)}, "samples")
    assert (row.model, row.baseline, row.kept) == ("agreement 0.9500 · FID not computed", "agreement 1.0000 · FID 300.0", "—")
    assert _kept(samples(0.85, "not computed"), "samples") == "no"  # fails on agreement whatever the FID


def test_ood_detection_needs_mean_and_every_set_against_the_baseline() -> None:
    def best(mean, **sets):
        return {"ood_best": {**{s: {"score": "logp", "auroc": a} for s, a in sets.items()}, "mean": mean}}

    model = best(0.98, a=0.99, b=0.97)
    assert _kept({**model, "baseline": best(0.97, a=0.98, b=0.96)}, "OOD detection") == "yes"
    row = _promise({**model, "baseline": best(0.98, a=0.98, b=0.98)}, "OOD detection")
    assert row.kept == "no" and row.model == "mean 0.9800 · worst b 0.9700 · below the baseline on b"
    assert row.baseline == "mean 0.9800 · worst a 0.9800"
    assert _kept(model, "OOD detection") == "—"  # the per-set half needs a baseline
    assert _kept(best(0.9, a=0.9), "OOD detection") == "no"  # the mean alone fails it
    assert _kept({**model, "baseline": best(0.9, c=0.9)}, "OOD detection") == "—"  # no set in common


def test_ood_detection_forgives_the_baseline_by_one_standard_error() -> None:
    def best(sizes, **sets):
        return {"ood_best": {**{s: {"score": "logp", "auroc": a} for s, a in sets.items()}, "mean": 0.99},
                **({"ood_sizes": {"test": sizes, **{s: sizes for s in sets}}} if sizes else {})}

    base = best(1000, a=0.9993, b=0.99)
    assert _kept({**best(1000, a=0.9990, b=0.995), "baseline": base}, "OOD detection") == "yes"  # 0.0003 < SE ≈ 0.0006
    assert _kept({**best(1000, a=0.9900, b=0.995), "baseline": base}, "OOD detection") == "no"  # 0.0093 is not a tie
    assert _kept({**best(0, a=0.9990, b=0.995), "baseline": best(0, a=0.9993, b=0.99)}, "OOD detection") == "no"  # no sizes: strict


def test_ood_by_logp_leaves_out_noise_sets() -> None:
    ood = {"uniform": {"logp": 0.5}, "gaussian": {"logp": 0.4}, "flip": {"logp": 0.95, "maxprob": 0.5}, "interp": {"logp": 0.92}}
    assert _kept({"ood": ood}, "OOD by the model's log p(x)") == "yes"
    ood["interp"]["logp"] = 0.85
    row = _promise({"ood": ood}, "OOD by the model's log p(x)")
    assert (row.model, row.kept) == ("worst interp 0.8500 of 2 sets · below 0.90 on interp", "no")
    assert _kept({"ood": {"uniform": {"logp": 0.5}}}, "OOD by the model's log p(x)") == "—"  # noise only: not measured


def test_missing_data_beats_the_mean_fill_on_every_mask() -> None:
    result = {"steps": 5, "n_images": 16, "n_samples": 2,
              "lower_half": {"mse": 0.02, "psnr": 17.0, "sample_mse": 0.04, "mean_fill_mse": 0.05},
              "random_pixels": {"mse": 0.01, "psnr": 20.0, "sample_mse": 0.02, "mean_fill_mse": 0.03}}
    row = _promise({"inpainting": result}, "missing data")
    assert row.kept == "yes" and row.model == "lower_half 0.0200 vs mean fill 0.0500 · random_pixels 0.0100 vs mean fill 0.0300"
    result["random_pixels"]["mse"] = 0.04
    assert _kept({"inpainting": result}, "missing data") == "no"


def test_likelihood_is_judged_against_the_gaussian_by_the_pessimistic_end() -> None:
    old = {"likelihood": {"bpd": 3.2, "bpd_stderr": 0.01, "ess": 12.3, "n_chains": 100, "log_z": 5.0}}
    row = _promise({**old, "baseline": old}, "likelihood")  # a run from before the sandwich: shown, not judged
    assert (row.baseline, row.kept) == ("3.2000 bits/dim ± 0.0100 · ESS 12 of 100 chains", "—")
    assert row.model == row.baseline + " · log p(x) on OOD sets not measured (suite ood)"
    new = {"likelihood": {"bpd": 0.9, "bpd_reverse": 1.1, "ess": 3.0, "n_chains": 100, "bpd_gaussian": 1.0,
                          "beats_gaussian": False}}
    row = _promise(new, "likelihood")
    assert row.kept == "no" and row.model.startswith("0.9000 – 1.1000 bits/dim (forward – reverse AIS) · ESS 3 of 100 chains · Gaussian 1.0000 · ")
    new["likelihood"]["beats_gaussian"] = True
    assert _kept(new, "likelihood") == "—"  # the better density, but its ranking of OOD images is not measured
    ood = {"gaussian": {"logp": 1.0}, "flip": {"logp": 0.95}, "glyphs": {"logp": 0.93}}
    row = _promise({**new, "ood": ood}, "likelihood")
    assert row.kept == "yes" and row.model.endswith(" · log p(x) on OOD sets: " + _promise({"ood": ood}, "OOD by the model's log p(x)").model)
    ood["glyphs"]["logp"] = 0.55  # a density of pixels that prefers simple images (Nalisnick et al. 2019)
    assert _kept({**new, "ood": ood}, "likelihood") == "no"


def _curves(eps, **curves):
    return {"robustness": {"linf": {"eps": eps, **curves, "monotone": {c: True for c in curves}}}}


def test_robustness_compares_purified_accuracies_at_every_eps_from_005() -> None:
    eps = [0.0, 0.02, 0.05, 0.1]
    model = _curves(eps, bare=[0.9, 0.3, 0.1, 0.0], bpda=[0.9, 0.8, 0.7, 0.6], full=[0.9, 0.85, 0.65, 0.62])
    by_model = _curves(eps, bare=[0.9, 0.2, 0.0, 0.0], bpda=[0.9, 0.7, 0.3, 0.1], full=[0.9, 0.7, 0.3, 0.1],
                       bpda_by_model=[0.9, 0.75, 0.44, 0.35], full_by_model=[0.9, 0.75, 0.45, 0.39])
    row = _promise({**model, "baseline": by_model}, "robustness")
    # the stronger attack per ε; ε = 0.02 misses the margin but is below 0.05
    assert (row.model, row.baseline, row.kept) == ("0.8000 / 0.6500 / 0.6000 at ε 0.02 / 0.05 / 0.1",
                                                   "0.7500 / 0.4400 / 0.3500 at ε 0.02 / 0.05 / 0.1 (model's purifier)", "yes")
    by_model["robustness"]["linf"]["bpda_by_model"][3] = by_model["robustness"]["linf"]["full_by_model"][3] = 0.45
    assert _kept({**model, "baseline": by_model}, "robustness") == "no"
    own = _curves(eps, bare=[0.9, 0.2, 0.0, 0.0], bpda=[0.9, 0.7, 0.3, 0.1], full=[0.9, 0.7, 0.4, 0.2])
    found = judge_robustness(model, own)
    assert (found.baseline, found.kept) == ("0.7000 / 0.3000 / 0.1000 at ε 0.02 / 0.05 / 0.1 (own purifier)", True)
    assert _kept(model, "robustness") == "—"  # no baseline
    assert _kept(_curves(eps, bare=[0.9, 0.3, 0.1, 0.0]), "robustness") == "—"  # no defended curve: not measured
    assert _promise(_curves(eps, bare=[0.9, 0.3, 0.1, 0.0]), "robustness").model == "not measured (suite robustness)"


def test_features_probe_beats_a_random_network() -> None:
    feats = {"features": {"labels_per_class": 100, "n_test": 1000, "probe_accuracy": 0.8, "random_init_probe_accuracy": 0.7}}
    row = _promise(feats, "features")
    assert (row.model, row.kept) == ("probe 0.8000 vs random init 0.7000 · 100 labels/class", "yes")
    feats["features"]["random_init_probe_accuracy"] = 0.76
    assert _kept(feats, "features") == "no"
    del feats["features"]["random_init_probe_accuracy"]
    assert _kept(feats, "features") == "—"


def test_semi_supervised_is_shown_when_present_and_never_judged() -> None:
    assert _promise({"accuracy": 0.9}, "semi-supervised").model == "not measured here (see README)"
    row = _promise({"semi_supervised": {"accuracy": 0.9, "labels_per_class": 10}}, "semi-supervised")
    assert (row.model, row.kept) == ("accuracy 0.9000 · labels_per_class 10", "—")
