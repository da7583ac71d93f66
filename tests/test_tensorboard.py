"""TensorBoard beside metrics.csv: the same scalars (energies, gap, accuracy, SGLD gradient norm, lr,
test accuracy, buffer statistics) and the sample grids, read back with TensorBoard's own reader."""
import csv

import pytest
import torch

from jemkit.config import load_preset
from jemkit.training import train
from jemkit.training.monitor import buffer_stats

TINY = ["train.steps=4", "model.width=8", "buffer.size=100", "sampler.steps=3", "train.log_every=2",
        "train.eval_every=2", "train.sample_every=2"]


def test_event_files_hold_the_csv_scalars_and_sample_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(load_preset("digits-jem", TINY), run, progress=False)
    events = list(run.glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {"energy/e_data": "e_data", "energy/e_sample": "e_sample", "energy/gap": "gap", "train/acc": "acc",
                "train/loss": "loss", "sampler/sgld_grad_norm": "sgld_grad_norm", "optim/lr": "lr",
                "eval/test_acc": "test_acc", "buffer/buffer_mean": "buffer_mean", "buffer/buffer_std": "buffer_std"}
    assert set(expected) <= tags, set(expected) - tags
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for tag, column in expected.items():
        logged = acc.Scalars(tag)
        assert [e.step for e in logged] == [int(r["step"]) for r in rows], tag
        assert [e.value for e in logged] == pytest.approx([float(r[column]) for r in rows], rel=1e-6, abs=1e-9), tag
    images = acc.Images("samples/replay_buffer")
    assert [e.step for e in images] == [2, 4] and images[0].width > 8 * 8


def test_tensorboard_switch_off_writes_no_events(tmp_path):
    train(load_preset("digits-baseline", ["train.steps=2", "model.width=8", "train.tensorboard=false"]), tmp_path / "run",
          progress=False)
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_buffer_stats_measure_spread_and_collapse():
    g = torch.Generator().manual_seed(0)
    fresh = torch.rand(4000, 1, 8, 8, generator=g) * 2 - 1  # U(-1, 1): std 1/sqrt(3)
    s = buffer_stats(fresh)
    assert abs(s["buffer_mean"].item()) < 0.02 and abs(s["buffer_std"].item() - 3 ** -0.5) < 0.01
    collapsed = fresh[:1].expand(4000, -1, -1, -1) + 0.001 * torch.randn(4000, 1, 8, 8, generator=g)
    assert buffer_stats(collapsed)["buffer_std"].item() < 0.002
