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


QUALITY_HEADER = "step,test_acc,test_ece,test_agreement,seconds\n"


def write_quality_run(path, rows):
    """rows: (step, test_acc, test_ece, test_agreement or None, seconds)."""
    path.mkdir(parents=True)
    lines = [QUALITY_HEADER] + [f"{s},{a},{e},{'' if g is None else g},{sec}\n" for s, a, e, g, sec in rows]
    (path / "metrics.csv").write_text("".join(lines))
    return path


@pytest.fixture()
def seeds(tmp_path):
    """Two baseline seeds (finals 0.90 / 0.92, ECE 0.02 / 0.04) and two JEM seeds. Targets: accuracy ≥ 0.90,
    ECE ≤ 0.03 (medians of the baseline's finals)."""
    base = [write_quality_run(tmp_path / "b0", [(1, 0.85, 0.05, None, 10), (2, 0.89, 0.03, None, 20), (3, 0.90, 0.02, None, 30)]),
            write_quality_run(tmp_path / "b1", [(1, 0.90, 0.05, None, 10), (2, 0.92, 0.04, None, 20), (3, 0.92, 0.04, None, 30)])]
    jem = [  # seed 0: accurate at 15 s but miscalibrated, agreement short at 25 s, all three at 35 s
        write_quality_run(tmp_path / "j0", [(1, 0.91, 0.05, 0.95, 15), (2, 0.91, 0.02, 0.80, 25), (3, 0.905, 0.03, 0.9, 35)]),
        write_quality_run(tmp_path / "j1", [(1, 0.90, 0.01, 1.0, 12), (2, 0.93, 0.01, 1.0, 24)])]
    return base, jem


def test_time_to_quality_needs_all_three_and_takes_medians_over_seeds(seeds, tmp_path):
    base, jem = seeds
    record = compare_runs([*base, *jem], tmp_path / "out", labels=["base", "base", "jem", "jem"], quality=True)
    q = record["quality"]
    assert q["targets"] == {"test_acc": pytest.approx(0.90), "test_ece": pytest.approx(0.03), "test_agreement": 0.9}
    # each baseline seed to its own final − 1 point: 0.89 at 20 s, 0.91 at 20 s
    assert [s["seconds"] for s in q["recipes"]["base"]["seeds"]] == [20, 20]
    assert [s["seconds"] for s in q["recipes"]["jem"]["seeds"]] == [35, 12]
    assert q["recipes"]["jem"]["median_seconds"] == pytest.approx(23.5) and q["recipes"]["jem"]["ratio"] == pytest.approx(23.5 / 20)
    assert set(record["runs"]) == {"base", "base#2", "jem", "jem#2"}  # the curves keep every seed


def test_time_to_quality_never_reached_and_missing_columns(seeds, tmp_path, capsys):
    base, jem = seeds
    slow = write_quality_run(tmp_path / "slow", [(1, 0.95, 0.2, 1.0, 5)])  # never calibrated enough
    q = compare_runs([*base, jem[0], slow], tmp_path / "o1", labels=["base", "base", "jem", "jem"], quality=True)["quality"]
    assert q["recipes"]["jem"]["seeds"][1] is None and q["recipes"]["jem"]["median_seconds"] is None
    assert q["recipes"]["jem"]["ratio"] is None
    old = write_run(tmp_path / "old", [(100, 1.0, -2, 2, 0.5, 100), (200, 0.5, -3, 3, 0.7, 200)])
    with pytest.raises(ValueError, match="run 'old' logged no test_ece or test_agreement"):
        compare_runs([base[0], old], tmp_path / "o2", quality=True)
    assert main(["compare", str(base[0]), str(base[1]), str(jem[0]), str(jem[1]), "--labels", "base,base,jem,jem",
                 "--quality", "--out", str(tmp_path / "o3")]) == 0
    out = capsys.readouterr().out
    assert "time to quality: test accuracy >= 0.9000" in out and "ECE <= 0.0300" in out
    assert "jem" in out and "median 0.4 min, 1.18x base's" in out


def test_repeated_labels_give_mean_and_std_per_recipe(tmp_path, capsys):
    """Seeds of two recipes (e.g. the semi-supervised comparison): best and final test accuracy, mean ± sample
    std over seeds, and the difference of means from the reference recipe."""
    accs = {"base": [(0.60, 0.58), (0.62, 0.62), (0.64, 0.60)], "jem": [(0.70, 0.69), (0.72, 0.70)]}
    dirs, labels = [], []
    for label, seeds in accs.items():
        for i, (best, final) in enumerate(seeds):
            dirs.append(write_run(tmp_path / f"{label}{i}", [(100, 1, 0, 0, best, 10), (200, 1, 0, 0, final, 20)]))
            labels.append(label)
    record = compare_runs(dirs, tmp_path / "out", labels=labels)
    base, jem = record["by_recipe"]["base"], record["by_recipe"]["jem"]
    assert base["n"] == 3 and base["best_mean"] == pytest.approx(0.62) and base["best_std"] == pytest.approx(0.02)
    assert base["final_mean"] == pytest.approx(0.60) and "best_minus_reference" not in base
    assert jem["n"] == 2 and jem["best_mean"] == pytest.approx(0.71) and jem["best_std"] == pytest.approx(0.02 ** 0.5 / 10)
    assert jem["best_minus_reference"] == pytest.approx(0.09) and jem["final_minus_reference"] == pytest.approx(0.095)
    assert "by_recipe" not in compare_runs(dirs[:2], tmp_path / "o2", labels=["a", "b"])  # no seeds, no summary
    assert main(["compare", *map(str, dirs), "--out", str(tmp_path / "c"), "--labels", ",".join(labels)]) == 0
    out = capsys.readouterr().out
    assert "jem" in out and "0.7100 ± 0.0141" in out and "(best +9.0 points)" in out
