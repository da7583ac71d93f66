"""End to end through the command line, on 2 training steps."""
import csv
import json
import subprocess
import sys

import pytest
import torch

from jemkit.cli import main

TINY = ["--set", "train.steps=2", "--set", "buffer.size=100", "--set", "model.width=8", "--quiet"]
DIGITS_STEPS_PER_EPOCH = 1437 // 64  # digits-jem: 1,437 training images, batch 64, drop_last


def csv_rows(run) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_demo_tiny(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "report.html" in printed
    m = json.loads((out / "metrics.json").read_text())
    for metrics in (m, m["baseline"]):
        assert 0 <= metrics["accuracy"] <= 1 and "nll" in metrics
        assert metrics["calibration"]["bins"] == 20 and 0 <= metrics["calibration"]["ece"] <= 1
        for ood_set in ("uniform", "flip", "interp"):
            for key in ("ood", "ood_aupr", "ood_fpr95"):
                assert set(metrics[key][ood_set]) == {"logp", "maxprob", "gradnorm", "energy"}
                assert all(0 <= v <= 1 for v in metrics[key][ood_set].values())
    for f in ["report.html", "report.md", "reliability.png", "baseline_reliability.png", "ood_histograms.png",
              "samples_class_conditional.png", "samples_replay_buffer.png"]:
        assert (out / f).is_file(), f
    assert (out / "runs" / "jem" / "config.yaml").is_file() and (out / "runs" / "jem" / "metrics.csv").is_file()


@pytest.mark.slow
def test_train_eval_sample(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits-jem", "--out", str(run), "--set", "train.log_every=1", *TINY]) == 0
    assert (run / "config.yaml").is_file() and list((run / "samples").glob("*.png"))
    rows = csv_rows(run)
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert [float(r["epoch"]) for r in rows] == [round(s / DIGITS_STEPS_PER_EPOCH, 3) for s in (1, 2)]

    assert main(["eval", str(run), "--out", str(tmp_path / "ev"), "--suite", "accuracy,calibration", "--quiet"]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert "accuracy" in m and "ood" not in m

    assert main(["sample", str(run), "--out", str(tmp_path / "s.png"), "--class", "3", "--steps", "2", "-n", "4"]) == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second train into the same directory is refused without --overwrite
    capsys.readouterr()
    assert main(["train", "--preset", "digits-jem", "--out", str(run), *TINY]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", "--preset", "digits-jem", "--out", str(run), "--overwrite", *TINY]) == 0


@pytest.mark.slow
def test_unconditional_ebm_run_does_not_report_a_chance_accuracy(tmp_path, capsys):
    run = tmp_path / "ebm"
    assert main(["train", "--preset", "digits-jem", "--out", str(run), "--set", "train.objective=ebm", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "unconditional EBM" in printed and "--suite features" in printed and "test accuracy" not in printed


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "digits-jm", "--out", "x"], "did you mean 'digits-jem'"),
    (["train", "--preset", "digits-jem", "--out", "x", "--set", "optim.lrr=1"], "did you mean 'lr'"),
    (["eval", "no/such/run", "--out", "x"], "does not exist"),
    (["sample", "no/such/run", "--out", "x.png"], "does not exist"),
])
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "jemkit", "presets"], capture_output=True, text=True, check=True).stdout
    assert "digits-jem" in out and "fmnist-baseline" in out


@pytest.mark.slow
def test_semi_supervised_train_and_resume(tmp_path):
    argv = ["train", "--preset", "digits-jem", "--out", str(tmp_path / "run"), "--set", "data.labels_per_class=3", *TINY]
    assert main(argv) == 0
    from jemkit.checkpoint import load_training_state, resolve_checkpoint

    # 30 labelled images: one batch of 30 is a whole epoch; the unlabelled stream runs over all 1,437 images
    state = load_training_state(resolve_checkpoint(tmp_path / "run"))
    assert (state["stream"]["epoch"], state["stream"]["pos"]) == (2, 0)
    assert (state["unlabeled"]["epoch"], state["unlabeled"]["pos"]) == (0, 2)
    assert [(r["step"], r["epoch"]) for r in csv_rows(tmp_path / "run")] == [("2", "2.0")]
    assert main([*argv[:-len(TINY)], *TINY[:-1], "--set", "train.steps=4", "--resume", "--quiet"]) == 0
    state = load_training_state(resolve_checkpoint(tmp_path / "run"))
    assert (state["stream"]["epoch"], state["unlabeled"]["pos"]) == (4, 4)  # resumed where it stopped


@pytest.mark.slow
@pytest.mark.parametrize("sets, objective", [
    (["train.objective=ebm", "model.spectral_norm=true", "train.energy_l2=0.1", "optim.grad_clip=1.0"], "ebm"),
    (["train.objective=ebm", "train.chain_init=data"], "ebm"),
    (["train.chain_init=data", "sampler.name=mala", "sampler.step_size=0.001"], "jem"),
])
def test_unconditional_and_cd_k_variants_train_and_load(tmp_path, sets, objective):
    import jemkit

    argv = ["train", "--preset", "digits-jem", "--out", str(tmp_path / "run"), *TINY]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    model = jemkit.load(tmp_path / "run")
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    assert model.record["config"]["train"]["objective"] == objective
    (row,) = csv_rows(tmp_path / "run")
    loss, gap = float(row["loss"]), float(row["gap"])
    if objective == "ebm":  # labels unused: no cross-entropy, no accuracy; without the L2 term the loss is the gap
        assert row["ce"] == "" and row["acc"] == ""
        if "train.energy_l2=0.1" in sets:
            assert loss > gap  # + 0.1 · [E(x_data)² + E(x_sampled)²]
        else:
            assert loss == pytest.approx(gap, abs=1e-5)
    else:  # JEM: CE(f(x), y) + [E(x_data) − E(x_sampled)]
        assert loss == pytest.approx(float(row["ce"]) + gap, abs=1e-5)


@pytest.mark.slow
def test_eval_robustness_epsilons_from_the_cli(tmp_path):
    pytest.importorskip("torchattacks")
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits-baseline", "--out", str(run), *TINY]) == 0
    argv = ["eval", str(run), "--out", str(tmp_path / "ev"), "--suite", "robustness", "--quick", "--quiet",
            "--linf-eps", "0.02,0.2", "--l2-eps", "1.5", "--robustness", "n_bare=24", "--robustness", "defense_gradients=[bpda]",
            "--robustness", "pgd_steps_bare=2"]
    assert main(argv) == 0
    r = json.loads((tmp_path / "ev" / "metrics.json").read_text())["robustness"]
    assert r["linf"]["eps"] == [0.0, 0.02, 0.2] and r["l2"]["eps"] == [0.0, 1.5]
    assert r["n_bare"] == 24 and r["attack"]["pgd_steps_bare"] == 2
    assert set(r["linf"]) >= {"bare", "bpda"} and "full" not in r["linf"]


def test_eval_names_an_unknown_robustness_option(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits-baseline", "--out", str(run), *TINY]) == 0
    assert main(["eval", str(run), "--out", str(tmp_path / "ev"), "--suite", "robustness", "--quick", "--quiet",
                 "--robustness", "n_bares=24"]) != 0
    err = capsys.readouterr().err
    assert "unknown robustness option 'n_bares'" in err and "n_bare" in err


def test_eval_passes_suite_options_and_refuses_unknown_suites(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits-baseline", "--out", str(run), *TINY]) == 0
    argv = ["eval", str(run), "--out", str(tmp_path / "ev"), "--suite", "inpainting,features", "--quick", "--quiet",
            "--option", "inpainting.init=mean", "--option", "inpainting.steps=0", "--option", "features.labels_per_class=3"]
    assert main(argv) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["inpainting"]["init"] == "mean" and m["inpainting"]["steps"] == 0
    assert m["inpainting"]["lower_half"]["mse"] == pytest.approx(m["inpainting"]["lower_half"]["mean_fill_mse"], rel=1e-5)
    assert m["features"]["labels_per_class"] == 3
    assert main([*argv[:-2], "--option", "inpaintng.init=mean"]) != 0
    assert "suite 'inpaintng' takes no options (did you mean 'inpainting'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv[:-2], "--option", "init=mean"])
    assert "expected SUITE.KEY=VALUE" in capsys.readouterr().err
