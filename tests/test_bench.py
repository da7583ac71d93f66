"""`jemkit bench`: the record has every field, the jemkit contenders run jemkit's code, the textbook does not."""
import json

import pytest
import torch

from jemkit.bench.contenders import QUICK_NETS, make_net, parse_variant
from jemkit.bench.measure import count_flops, measure
from jemkit.cli import main

ROW_KEYS = {"net", "stage", "contender", "seconds", "seconds_reps", "images_steps_per_s", "gflop", "gflop_per_s",
            "ceiling_dtype", "pct_matmul_ceiling", "pct_conv1x1_ceiling", "peak_rss_mb", "rss_rise_mb", "page_faults",
            "page_faults_per_step", "cuda_peak_mb", "first_call_s", "first_call_extra_s"}


def test_bench_quick_writes_json_and_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--reps", "1", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "speedup" in printed and "ceilings (GFLOP/s)" in printed
    r = json.loads(out.read_text())
    assert r["meta"]["quick"] and r["meta"]["batch"] == 4 and r["meta"]["steps"] == 2
    assert {"matmul_fp32", "conv1x1_fp32", "matmul_bf16", "conv1x1_bf16"} <= set(r["ceilings"])
    contenders = ["textbook", "fp32", "bf16+cl"]
    rows = {(x["net"], x["stage"], x["contender"]): x for x in r["results"]}
    assert set(rows) == {(n, s, c) for n in ("fmnist", "wrn-28-2") for s in ("sampler", "iteration") for c in contenders}
    for key, row in rows.items():
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["seconds"] > 0 and row["gflop"] > 0 and row["pct_conv1x1_ceiling"] > 0
        assert row["page_faults_per_step"] == row["page_faults"] / 2 and len(row["seconds_reps"]) == 1
        assert row["seconds"] == pytest.approx(row["seconds_reps"][0], abs=1e-6)  # the median of one rep is that rep
        if key[2] != "textbook":
            assert row["speedup"] == pytest.approx(rows[key[:2] + ("textbook",)]["seconds"] / row["seconds"])
        if key[1] == "sampler":
            assert "energy_diff_vs_textbook" in row
    assert len(r["comparisons"]) == 8 and all("speedup" in c for c in r["comparisons"])
    assert r["meta"]["baseline_memory"] == "default" and "textbook: its own process" in printed
    for m in r["memory"].values():  # one timed rep: no growth to report after it
        assert len(m["rss_mb_after_each_rep"]) == 1 and m["rss_growth_mb"] == 0 and m["rss_growth_after_first_rep_mb"] is None
    # the same float32 arithmetic and the same noise: jemkit's SGLD lands where the textbook loop does
    for net in ("fmnist", "wrn-28-2"):
        assert abs(rows[(net, "sampler", "fp32")]["energy_diff_vs_textbook"]) < 1e-4
        assert abs(rows[(net, "sampler", "bf16+cl")]["energy_diff_vs_textbook"]) < 0.05
    # one iteration = its loss passes + steps SGLD passes; jemkit shares one forward for CE and E(x_data)
    assert rows[("fmnist", "iteration", "fp32")]["gflop"] < rows[("fmnist", "iteration", "textbook")]["gflop"]


def test_bench_rejects_bad_names(capsys):
    assert main(["bench", "--quick", "--nets", "resnet", "--quiet"]) == 2
    assert "unknown bench network" in capsys.readouterr().err
    assert main(["bench", "--quick", "--variants", "bf61", "--quiet"]) == 2
    assert "did you mean 'bf16'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "--quick", "--variants", "graph", "--quiet"]) == 2
        assert "needs a CUDA device" in capsys.readouterr().err


def test_variant_parsing():
    v = parse_variant("compile+bf16+cl")
    assert (v.compile, v.bf16, v.channels_last, v.cuda_graph) == (True, True, True, False)
    v = parse_variant("fp32")
    assert not (v.compile or v.bf16 or v.channels_last or v.cuda_graph)


def test_flop_count_of_an_sgld_step_is_forward_plus_input_backward():
    """A linear energy head: forward 2·B·D·K, input-gradient backward the same (no weight gradient)."""
    f = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5, bias=False))
    x = torch.rand(3, 1, 3, 4)
    flops = count_flops(lambda: torch.autograd.grad(f(x.requires_grad_(True)).logsumexp(1).sum(), x))
    assert flops == 2 * (2 * 3 * 12 * 5)


def test_measure_counts_the_pages_a_call_touches():
    """64 MiB of fresh anonymous memory in 4 KiB pages (no huge pages): one minor fault per page."""
    import mmap

    size = 64 * 2**20

    def touch():
        m = mmap.mmap(-1, size)
        m.madvise(mmap.MADV_NOHUGEPAGE)
        for i in range(0, size, mmap.PAGESIZE):
            m[i] = 1
        m.close()

    pages = size // mmap.PAGESIZE
    sample = measure(touch, torch.device("cpu"))
    assert sample.page_faults >= pages and sample.seconds > 0
    if sample.rss_rise_mb is not None:  # the kernel let us reset the peak-RSS mark
        assert sample.rss_rise_mb >= 60
    assert measure(lambda: None, torch.device("cpu")).page_faults < pages // 100


def test_quick_nets_build():
    for spec in QUICK_NETS.values():
        net = make_net(spec)
        assert net(torch.rand(2, *spec.shape)).shape == (2, 10)


def test_textbook_baseline_runs_in_its_own_process_with_the_same_arithmetic():
    import os

    from jemkit.bench.baseline_process import TextbookProcess
    from jemkit.bench.contenders import Settings, Textbook

    spec = QUICK_NETS["fmnist"]
    net, s, device = make_net(spec), Settings(batch=4, steps=3, buffer_size=20), torch.device("cpu")
    x0 = torch.rand(4, *spec.shape) * 2 - 1
    remote = TextbookProcess(net, spec, s, device)
    try:
        assert remote.process.pid != os.getpid() and remote.process.is_alive()
        local = Textbook(net, spec, s, device).sample(x0, seed=3)
        assert torch.equal(remote.sample(x0, seed=3), local)  # same network, noise and float32 steps
        sample, out = remote.measure("sampler", x0, torch.zeros(4, dtype=torch.long), seed=3, keep=True)
        assert sample.seconds > 0 and torch.equal(out, local)  # the timed call's own samples come back
        sample, out = remote.measure("iteration", x0, torch.zeros(4, dtype=torch.long), seed=0)  # (an optimizer step)
        assert sample.seconds > 0 and out is None
    finally:
        remote.close()
    assert not remote.process.is_alive()
    with pytest.raises(ValueError, match="baseline memory"):
        TextbookProcess(net, spec, s, device, memory="tcmalloc")


def test_churn_check_runs_a_contender_in_a_fresh_process_and_tabulates():
    import subprocess
    import sys

    from jemkit.bench.churn import format_churn

    out = subprocess.run([sys.executable, "-m", "jemkit.bench.churn", "--child", "fp32", "steady", "--calls", "2"],
                         capture_output=True, text=True, check=True)
    calls = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(calls) == 2 and all(s > 0 and isinstance(f, int) for s, f in calls)
    rows = [{"contender": c, "memory": m, "seconds": s, "page_faults": f}
            for c, m, s, f in [("textbook", "default", 0.5, 9e4), ("textbook", "steady", 0.25, 0.0)]]
    table = format_churn({"net": "fmnist", "rounds": 1, "calls": 2, "rows": rows})
    assert "2.00x faster with steady memory" in table and "90000" in table
