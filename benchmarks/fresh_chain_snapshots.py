"""Fresh chains of a trained classifier from U(−1, 1), saved at several lengths: 10 class-conditional chains per
class and N unconditional ones, with the class agreement and mean energy at each length.

usage: python benchmarks/fresh_chain_snapshots.py RUN OUT_DIR N LENGTHS   (LENGTHS e.g. 20,100,300,1000)

OUT_DIR gets snap.pt (fp16 tensors cond_K, uncond_K and up to 200 replay-buffer entries), snap.json and the model
as a checkpoint without its buffer and optimizer state (`jemkit.save_model`), small enough to carry back from a
GPU machine. The chains continue from one length to the next, so each length costs only its extra steps.
"""
import json
import sys
from pathlib import Path

import torch

import jemkit
from jemkit.checkpoint import load_buffer, resolve_checkpoint
from jemkit.energy import ClassifierEnergy
from jemkit.sampling import make_sampler, sampler_config, uniform_init


def main(run: str, out: str, n: int, lengths: list[int]) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = jemkit.load(run, device=device)
    energy = ClassifierEnergy(model, model.record.get("temperature", 1.0))
    g = torch.Generator(device=device).manual_seed(1)
    result, saved = {"run": run, "step": model.record.get("step"), "lengths": lengths}, {}
    y_cond = torch.arange(model.num_classes, device=device).repeat_interleave(10)
    for tag, y, m in (("cond", y_cond, len(y_cond)), ("uncond", None, n)):
        x, done = uniform_init(m, tuple(model.input_shape), generator=g, device=device), 0
        for k in lengths:
            x = make_sampler(sampler_config(model.record, steps=k - done))(energy, x, y=y, generator=g)
            done = k
            saved[f"{tag}_{k}"] = x.detach().half().cpu()
            with torch.no_grad():
                if y is not None:
                    result[f"agree_{k}"] = (model(x).argmax(1) == y).float().mean().item()
                result[f"E_{tag}_{k}"] = energy(x).mean().item()
    buffer = load_buffer(resolve_checkpoint(run))
    if buffer is not None:
        saved["buffer"] = buffer[:200].half().cpu()
    Path(out).mkdir(parents=True, exist_ok=True)
    torch.save(saved, Path(out) / "snap.pt")
    jemkit.save_model(model, out)
    (Path(out) / "snap.json").write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(v) for v in sys.argv[4].split(",")])))
