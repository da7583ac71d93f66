"""`jemkit compare`: time to the reference's accuracy and curve differences, from metrics.csv files."""
import json

import pytest

from jemkit.cli import main
from jemkit.compare import compare_runs, curve_diff, read_run, time_to_reach

HEADER = "step,loss,e_data,e_sample,test_acc,seconds\n"


def write_run(path, rows):
    path.mkdir(parents=True)
    lines = [HEADER] + [f"{s},{loss},{ed},{es},{'' if acc is None else acc},{sec}\n" for s, loss, ed, es, acc, sec in rows]
    (path / "metrics.csv").write_text("".join(lines))
    return path


@pytest.fixture()
def runs(tmp_path):
    # reference: slow (100 s per eval); fast: reaches 0.5 at 20 s and 0.7 at 40 s
    ref = write_run(tmp_path / "ref", [(50, 2.0, -1, 1, None, 50), (100, 1.0, -2, 2, 0.5, 100), (200, 0.5, -3, 3, 0.7, 200)])
    fast = write_run(tmp_path / "fast", [(50, 1.5, -1.5, 1.0, None, 10), (100, 0.9, -2.5, 2.0, 0.55, 20),
                                         (200, 0.4, -3.0, 3.5, 0.7, 40), (300, 0.3, -3, 3, 0.8, 60)])
    return ref, fast


def test_time_to_reference_accuracy_and_speedup(runs, tmp_path):
    ref, fast = runs
    record = compare_runs([ref, fast], tmp_path / "out")
    ttr = record["runs"]["fast"]["time_to_reference"]
    assert [(t["accuracy"], t["reference_seconds"], t["seconds"]) for t in ttr] == [(0.5, 100, 20), (0.7, 200, 40)]
    assert ttr[-1]["speedup"] == pytest.approx(5.0)
    assert record["runs"]["ref"]["final_test_acc"] == 0.7 and record["runs"]["fast"]["best_test_acc"] == 0.8
    assert json.loads((tmp_path / "out" / "compare.json").read_text()) == record
    assert (tmp_path / "out" / "compare.png").stat().st_size > 0


def test_curve_diff_over_shared_steps_only(runs):
    ref, fast = (read_run(r) for r in runs)
    d = curve_diff(ref, fast)
    assert d["loss"]["steps"] == 3 and d["loss"]["max_abs"] == pytest.approx(0.5)
    assert d["e_sample"]["max_abs"] == pytest.approx(0.5) and d["e_sample"]["mean_abs"] == pytest.approx(0.5 / 3)
    assert d["test_acc"]["steps"] == 2 and d["test_acc"]["max_abs"] == pytest.approx(0.05)


def test_never_reached_is_none():
    assert time_to_reach([(100, 10.0, 0.3), (200, 20.0, 0.4)], 0.5) is None


def test_cli_prints_summary_and_refuses_bad_input(runs, tmp_path, capsys):
    ref, fast = runs
    assert main(["compare", str(ref), str(fast), "--out", str(tmp_path / "c"), "--labels", "official,jempp"]) == 0
    out = capsys.readouterr().out
    assert "jempp reached official's final test accuracy 0.7000 after 0.7 min" in out
    assert main(["compare", str(ref), "--out", str(tmp_path / "d")]) == 2
    assert "at least two run directories" in capsys.readouterr().err
    assert main(["compare", str(ref), str(tmp_path / "missing"), "--out", str(tmp_path / "e")]) == 2
    assert "no metrics.csv" in capsys.readouterr().err


def test_summary_names_the_reference_best_when_it_beats_its_final(tmp_path):
    from jemkit.compare import format_comparison

    ref = write_run(tmp_path / "ref", [(100, 1, -1, 1, 0.64, 800), (200, 1, -1, 1, 0.62, 1400)])  # peaked, then fell
    fast = write_run(tmp_path / "fast", [(100, 1, -1, 1, 0.77, 100)])
    text = format_comparison(compare_runs([ref, fast], tmp_path / "o"))
    assert "ref's final test accuracy 0.6200 after 1.7 min (ref: 23.3 min; 14.00x faster)" in text
    assert "ref's best test accuracy 0.6400 after 1.7 min (ref: 13.3 min; 8.00x faster)" in text
