"""Tests for jemkit.report: HTML/Markdown report from a fake evaluation directory."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from jemkit.cli import main
from jemkit.report import plot_training_curves, write_report

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
            re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def _row(html_text: str, key: str) -> str:
    m = re.search(rf"<tr><td>{re.escape(key)}</td>(.*?)</tr>", html_text)
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
    assert "<table>" in html_text and "<th>baseline</th>" in html_text
    expected = {"accuracy": ("0.9512", "0.9700"), "nll": ("0.1700", "0.1000"),
                "calibration.ece": ("0.0310", "0.0200"), "calibration.bins": ("20", "20"),
                "ood.uniform.logp": ("0.9900", "0.5000"), "ood.uniform.maxprob": ("0.9000", "0.8800"),
                "ood.uniform.gradnorm": ("—", "—"), "ood.flip.gradnorm": ("0.6500", "—"),
                "sampling.mean_energy": ("-3.5000", "—"), "extra_only_in_baseline": ("—", "1.5000")}
    for key, (model, base) in expected.items():
        assert _row(html_text, key) == f'<td class="num">{model}</td><td class="num">{base}</td>'
        assert f"| {key} | {model} | {base} |" in md
    for excluded in ("checkpoint", "run_dir", "dataset", "sampling.note", "sampling.flags", "baseline."):
        assert f"<tr><td>{excluded}" not in html_text
        assert f"| {excluded}" not in md

    # training curves and last training sample grids were produced in eval_dir
    for name in ("training_curves.png", "baseline_training_curves.png",
                 "training_samples.png", "baseline_training_samples.png"):
        assert (ev / name).read_bytes().startswith(PNG_SIG)
    assert (ev / "training_samples.png").read_bytes() == (ev.parent / "run/samples/step_000020.png").read_bytes()

    # figures in a fixed order by kind, the model's and the baseline's side by side in one row
    order = ["training_curves.png", "baseline_training_curves.png", "reliability.png", "baseline_reliability.png",
             "ood_histograms.png", "training_samples.png", "baseline_training_samples.png"]
    assert sorted(order) == sorted(p.name for p in ev.glob("*.png"))
    payloads = _img_payloads(html_text)
    assert len(payloads) == html_text.count("<img ") == len(order)
    assert payloads == [(ev / n).read_bytes() for n in order]
    rows = re.findall(r'<div class="row">(.*?)</div>', html_text, re.S)
    assert [r.count("<img ") for r in rows] == [2, 2, 1, 2]
    assert "model: reliability" in rows[1] and "baseline: reliability" in rows[1]
    assert "model: last training sample grid (replay buffer)" in html_text
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
    assert "baseline" not in html_text.split("<h2>Metrics</h2>")[1].split("</table>")[0]
    assert _row(html_text, "accuracy") == '<td class="num">0.9512</td>'
    assert _row(html_text, "ood.uniform.gradnorm") == '<td class="num">—</td>'
    assert "| metric | model |\n|---|---|\n" in md and "| accuracy | 0.9512 |" in md
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


def test_best_ood_score_per_set_is_one_line_and_one_summary_row(tmp_path: Path) -> None:
    from jemkit.report import summary_table

    ev = tmp_path / "eval"
    ev.mkdir()
    m = _metrics(str(tmp_path / "no_run"), {"accuracy": 0.9, "ood_best": {"flip": {"score": "maxprob", "auroc": 0.6}, "mean": 0.6}})
    m["ood_best"] = {"uniform": {"score": "logp", "auroc": 0.99}, "flip": {"score": "logp", "auroc": 0.7}, "mean": 0.845}
    (ev / "metrics.json").write_text(json.dumps(m))
    html_path, md_path = write_report(ev)
    html_text, md = html_path.read_text(), md_path.read_text()
    line = "uniform: logp 0.9900, flip: logp 0.7000 (mean 0.8450)"
    assert f"- **model, best OOD score per set:** {line}" in md
    assert "- **baseline, best OOD score per set:** flip: maxprob 0.6000 (mean 0.6000)" in md
    assert f"<li><b>model, best OOD score per set:</b> {line}</li>" in html_text
    assert _row(html_text, "ood_best.flip.auroc") == '<td class="num">0.7000</td><td class="num">0.6000</td>'
    assert "ood_best.flip.score" not in md
    row = [r for r in summary_table(m).splitlines() if r.startswith("OOD AUROC best score (mean)")]
    assert len(row) == 1 and row[0].split()[-2:] == ["0.8450", "0.6000"]


def test_a_report_without_ood_best_has_no_verdict_line(tmp_path: Path) -> None:
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "metrics.json").write_text(json.dumps(_metrics(str(tmp_path / "no_run"), None)))
    html_path, md_path = write_report(ev)
    assert "best OOD score per set" not in html_path.read_text() and "best OOD score per set" not in md_path.read_text()
