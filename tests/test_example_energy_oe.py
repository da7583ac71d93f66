"""examples/natural_patches.py (an outlier set from scikit-learn's sample photos) and examples/energy_oe_fmnist.sh
(train, choose margins, energy-OE fine-tune, evaluate), shrunk to seconds on digits."""
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import torch

EXAMPLES = Path(__file__).parent.parent / "examples"


def _patches_module():
    spec = importlib.util.spec_from_file_location("natural_patches", EXAMPLES / "natural_patches.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_patches_are_seeded_varied_images_of_the_asked_shape(tmp_path):
    patches = _patches_module()
    a, b, c = (patches.natural_patches(64, (1, 28, 28), seed=s) for s in (0, 0, 1))
    assert a.shape == (64, 1, 28, 28) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.float().std((1, 2, 3)).median() > 5  # textures, not flat images
    assert len({bytes(p.numpy()) for p in a}) == 64  # every crop differs
    rgb = patches.natural_patches(4, (3, 16, 16))
    assert rgb.shape == (4, 3, 16, 16) and not torch.equal(rgb[:, 0], rgb[:, 1])
    patches.main(["--out", str(tmp_path / "o.npz"), "--n", "10", "--shape", "1x8x8"])
    assert np.load(tmp_path / "o.npz")["x"].shape == (10, 8, 8)


def test_energy_oe_example_runs_end_to_end(tmp_path):
    out = tmp_path / "oe"
    env = {**os.environ, "DATA": "digits", "PRESET": "digits-baseline", "N_OUTLIERS": "300",
           "TRAIN_FLAGS": "--quiet --set train.steps=40 --set model.width=4 --set train.tensorboard=false",
           "FINETUNE_FLAGS": "--quiet --set train.tensorboard=false --set data.batch_size=16", "EVAL_FLAGS": "--quick --quiet"}
    done = subprocess.run(["bash", str(EXAMPLES / "energy_oe_fmnist.sh"), str(out), "5"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    m_in, m_out = (float(v.split("=")[1].rstrip(",")) for v in done.stdout.split("margins: ")[1].split()[:2])
    assert m_out - m_in >= 2 - 1e-3
    cfg = (out / "oe" / "config.yaml").read_text()
    assert "objective: energy_oe" in cfg and "margins: auto" in cfg
    m = json.loads((out / "oe" / "eval" / "metrics.json").read_text())
    assert set(m["ood_fpr95"]) >= {"uniform", "flip"} and "ood_fpr95" in m["baseline"]
