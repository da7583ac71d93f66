"""Checkpoints: weights in safetensors plus a JSON record of architecture and preprocessing.

A run directory holds ``checkpoints/step_NNNNNNNN.safetensors`` (model weights),
``step_NNNNNNNN.json`` (the record: architecture, input shape, classes, preprocessing, the
resolved config) and, for EBM training, ``step_NNNNNNNN.buffer.safetensors`` (replay buffer).
Every write is atomic (temporary file, fsync, rename). Loading never unpickles anything.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..model import Classifier
from ..nets import build_net

FORMAT = "jemkit-checkpoint/1"
_STEP = re.compile(r"^step_(\d+)\.safetensors$")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(directory: str | Path, step: int, model: Classifier, record: dict, buffer: torch.Tensor | None = None) -> Path:
    """Write weights (+ buffer) and the record for ``step``; returns the weights path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"step_{step:08d}"
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(stem.with_suffix(".safetensors"), lambda p: save_file(weights, str(p)))
    if buffer is not None:
        _atomic_write(Path(f"{stem}.buffer.safetensors"), lambda p: save_file({"x": buffer.detach().cpu().contiguous()}, str(p)))
    record = {"format": FORMAT, "step": step, **record}
    _atomic_write(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(record, indent=2)))
    return stem.with_suffix(".safetensors")


def resolve_checkpoint(path: str | Path) -> Path:
    """A weights file from a weights file, its .json record, a checkpoints dir or a run dir (latest step)."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".json":
            path = path.with_suffix(".safetensors")
        if _STEP.match(path.name) and path.is_file():
            return path
        raise FileNotFoundError(f"{path} is not a jemkit checkpoint (expected step_NNNNNNNN.safetensors or .json)")
    if path.is_dir():
        directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        steps = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP.match(p.name)))
        if steps:
            return steps[-1][1]
        raise FileNotFoundError(f"no checkpoint (step_*.safetensors) in {directory}")
    raise FileNotFoundError(f"checkpoint path {path} does not exist")


def read_record(weights_path: Path) -> dict:
    record_path = weights_path.with_suffix(".json")
    if not record_path.is_file():
        raise FileNotFoundError(f"checkpoint record {record_path} is missing (it describes the architecture)")
    record = json.loads(record_path.read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{record_path}: unknown checkpoint format {record.get('format')!r}, expected {FORMAT}")
    return record


def load(path: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """Load a checkpoint (file, record, or run directory → latest) as a ``Classifier`` in eval mode.

    The module maps images in [−1, 1] of shape (N, *input_shape) to logits; ``.preprocessing``
    tells how raw data were scaled, ``.record`` holds the whole checkpoint record.
    """
    weights_path = resolve_checkpoint(path)
    record = read_record(weights_path)
    net = build_net(record["arch"], record["input_shape"][0], record["num_classes"], **record["net_options"])
    model = Classifier(net, tuple(record["input_shape"]), record["num_classes"], record.get("preprocessing"))
    state = load_file(str(weights_path), device=str(device))
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {weights_path} does not match architecture '{record['arch']}': "
            f"missing keys {sorted(missing)[:5]}, unexpected keys {sorted(unexpected)[:5]}"
        )
    model.load_state_dict(state)
    model.record = record
    model.checkpoint_path = str(weights_path)
    return model.to(device).eval()


def load_buffer(weights_path: str | Path) -> torch.Tensor | None:
    """The replay buffer saved beside a checkpoint, or None."""
    p = Path(str(resolve_checkpoint(weights_path))[: -len(".safetensors")] + ".buffer.safetensors")
    return load_file(str(p))["x"] if p.is_file() else None
