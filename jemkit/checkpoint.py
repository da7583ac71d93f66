"""Checkpoints of every model kind (classifiers and score models, one record format) and how they load:
weights in safetensors, training state via ``torch.load(weights_only=True)``, and a
JSON record (architecture, preprocessing, resolved config, SHA-256 of every file).

A run directory holds, per saved step N, in ``checkpoints/``:
  step_N.safetensors         model weights
  step_N.ema.safetensors     exponential moving average of the weights (``train.ema > 0``); what
                             ``jemkit.load`` reads when present
  step_N.buffer.safetensors  replay buffer (EBM training)
  step_N.state.pt            optimizer, data position, RNG states, guard state (tensors and plain data only)
  step_N.json                the record; written last, so it marks a complete checkpoint
A run of W > 1 processes (torchrun) replaces the buffer file with one shard per rank,
``step_N.buffer.rankR.safetensors``, and adds ``step_N.state.rankR.pt`` (that rank's data-stream,
sampler and RNG states); rank 0 writes the rest and lists every rank's files in the record.
Every file is written atomically (temporary file, fsync, rename). A checkpoint whose record is
missing or unreadable, or whose files do not match their checksums, is skipped with a warning
and the previous one is used. Nothing is ever unpickled beyond what ``weights_only`` allows.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import SCORE_OBJECTIVES
from .model import Classifier, ScoreModel, with_input_convention, wrap
from .nets import build_net, is_external, load_torchscript, load_weights

FORMAT = "jemkit-checkpoint/1"
_RECORD = re.compile(r"^step_(\d+)\.json$")
log = logging.getLogger("jemkit")


class CorruptCheckpoint(ValueError):
    """A checkpoint file is truncated, altered, or holds something other than tensors and plain data."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, unwritable directory, ...)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, write) -> str:
    """Write via ``write(tmp_path)``, fsync, rename over ``path``; return the file's SHA-256."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        digest = _sha256(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointWriteError(err.errno, f"cannot write checkpoint file {path}: {err.strerror or err}") from err
    return digest


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    directory: str | Path,
    step: int,
    model: Classifier,
    record: dict,
    buffer: torch.Tensor | None = None,
    state: dict | None = None,
    shards: dict[str, str] | None = None,
    ema: torch.nn.Module | None = None,
) -> Path:
    """Write weights (+ buffer, + training state, + weight average) and then the record for ``step``;
    return the record path.

    ``shards`` (name → SHA-256) are files other ranks already wrote for this step (``save_shard``);
    the record lists them too, so a checkpoint is complete only when every rank's files are.
    ``ema`` is a module of the same architecture holding the averaged weights.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"step_{step:08d}"
    files = dict(shards or {})
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    files[f"{stem}.safetensors"] = _atomic_write(directory / f"{stem}.safetensors", lambda p: save_file(weights, str(p)))
    if ema is not None:
        averaged = {k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}
        files[f"{stem}.ema.safetensors"] = _atomic_write(directory / f"{stem}.ema.safetensors",
                                                         lambda p: save_file(averaged, str(p)))
    if buffer is not None:
        x = {"x": buffer.detach().cpu().contiguous()}
        files[f"{stem}.buffer.safetensors"] = _atomic_write(directory / f"{stem}.buffer.safetensors", lambda p: save_file(x, str(p)))
    if state is not None:
        files[f"{stem}.state.pt"] = _atomic_write(directory / f"{stem}.state.pt", lambda p: torch.save(state, p))
    full = {"format": FORMAT, "step": step, **record, "files": files}
    text = json.dumps(full, indent=2)
    path = directory / f"{stem}.json"
    _atomic_write(path, lambda p: p.write_text(text))
    _fsync_dir(directory)
    return path


def save_shard(directory: str | Path, step: int, rank: int, buffer: torch.Tensor | None, state: dict) -> dict[str, str]:
    """One rank's files of a distributed checkpoint (buffer shard, per-rank state); returns name → SHA-256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem, files = f"step_{step:08d}", {}
    if buffer is not None:
        x = {"x": buffer.detach().cpu().contiguous()}
        name = f"{stem}.buffer.rank{rank}.safetensors"
        files[name] = _atomic_write(directory / name, lambda p: save_file(x, str(p)))
    name = f"{stem}.state.rank{rank}.pt"
    files[name] = _atomic_write(directory / name, lambda p: torch.save(state, p))
    return files


# ---------------------------------------------------------------- finding and verifying

def read_record(record_path: Path, verify: bool = True) -> dict:
    """The record of a checkpoint; with ``verify``, every listed file must exist and match its checksum."""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptCheckpoint(f"{record_path}: unreadable record ({err})") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CorruptCheckpoint(f"{record_path}: not a {FORMAT} record")
    if verify:
        for name, digest in record.get("files", {}).items():
            p = record_path.parent / name
            if not p.is_file():
                raise CorruptCheckpoint(f"{record_path}: file {name} is missing")
            if _sha256(p) != digest:
                raise CorruptCheckpoint(f"{record_path}: file {name} does not match its checksum (truncated or altered)")
    return record


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, record path) of every checkpoint record in ``directory``, oldest first (not verified)."""
    if not directory.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _RECORD.match(p.name)))


def checkpoints_dir(path: Path) -> Path:
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


def latest_valid(directory: Path) -> tuple[Path, dict] | None:
    """The newest checkpoint that verifies, warning about each newer one that does not."""
    for _, record_path in reversed(list_checkpoints(directory)):
        try:
            return record_path, read_record(record_path)
        except CorruptCheckpoint as err:
            log.warning("skipping corrupt checkpoint: %s; falling back to the previous one", err)
    return None


def resolve_checkpoint(path: str | Path) -> Path:
    """The record path of a checkpoint given its weights file, its record, a checkpoints dir or a run dir (latest valid)."""
    path = Path(path)
    if path.is_file():
        name = path.name
        for suffix in (".ema.safetensors", ".buffer.safetensors", ".state.pt", ".safetensors", ".json"):
            if name.endswith(suffix) and _RECORD.match(name[: -len(suffix)] + ".json"):
                return path.with_name(name[: -len(suffix)] + ".json")
        raise FileNotFoundError(f"{path} is not a jemkit checkpoint (expected step_NNNNNNNN.safetensors or .json)")
    if path.is_dir():
        found = latest_valid(checkpoints_dir(path))
        if found is None:
            raise FileNotFoundError(f"no valid checkpoint (step_*.json + files) in {checkpoints_dir(path)}")
        return found[0]
    raise FileNotFoundError(f"checkpoint path {path} does not exist")


def prune_checkpoints(directory: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints and the best one (highest ``test_acc``)."""
    entries = list_checkpoints(directory)
    keep = {p for _, p in entries[-keep_last:]}
    scored = []
    for _, p in entries:
        try:
            acc = json.loads(p.read_text()).get("test_acc")
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(acc, (int, float)) and acc == acc:
            scored.append((acc, p))
    if scored:
        keep.add(max(scored, key=lambda t: t[0])[1])
    for _, p in entries:
        if p not in keep:
            stem = p.name[: -len(".json")]
            p.unlink(missing_ok=True)  # the record first: a half-deleted checkpoint is never taken as complete
            for f in directory.glob(f"{stem}.*"):  # weights, buffer (or per-rank shards), state
                f.unlink(missing_ok=True)


# ---------------------------------------------------------------- loading

def load(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> Classifier:
    """Load a checkpoint (file, record, or run directory → latest valid) as a ``Classifier`` in eval mode.

    The module maps images in [−1, 1] of shape (N, *input_shape) to logits; ``.preprocessing``
    tells how raw data were scaled, ``.record`` holds the whole checkpoint record. A checkpoint of a
    run with ``train.ema > 0`` holds an exponential moving average of the weights: it is what loads
    (``.ema`` is True) unless ``ema=False`` asks for the raw weights of the last step.
    """
    record_path, record = _read_for_loading(path)
    if is_score_record(record):
        raise ValueError(f"{record_path} is a score model (objective '{record['objective']}'), not a classifier: "
                         "draw samples with `jemkit sample` or load it with jemkit.load_score_model")
    return _load_weights(classifier_from_record(record), record_path, record, device, ema)


def classifier_from_record(record: dict) -> Classifier:
    """The ``Classifier`` a checkpoint record describes (architecture, net options, input convention), with
    freshly initialized weights (drawn from torch's global RNG)."""
    net = build_net(record["arch"], record["input_shape"][0], record["num_classes"], **record["net_options"])
    net = with_input_convention(net, record.get("preprocessing") or {})  # a wrapped model's mean/std
    return Classifier(net, tuple(record["input_shape"]), record["num_classes"], record.get("preprocessing"))


def load_score_model(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> ScoreModel:
    """Load a score checkpoint (file, record, or run directory → latest valid) as a ``ScoreModel`` in eval
    mode; ``.record`` holds the checkpoint record (its ``config`` has the noise levels and sampler).
    The weight average loads when the checkpoint has one, unless ``ema=False`` (as ``load``)."""
    record_path, record = _read_for_loading(path)
    if not is_score_record(record):
        raise ValueError(f"{record_path} is not a score model (objective '{record.get('objective')}'); use jemkit.load")
    net = build_net(record["arch"], record["input_shape"][0], record["num_classes"], **record["net_options"])
    model = ScoreModel(net, tuple(record["input_shape"]), record.get("preprocessing"))
    return _load_weights(model, record_path, record, device, ema)


def is_score_record(record: dict) -> bool:
    """Whether a checkpoint record describes a score model (trained by score matching, no classes)."""
    return record.get("objective") in SCORE_OBJECTIVES


def is_score_checkpoint(path: str | Path) -> bool:
    """Whether a checkpoint (or run directory) holds a score model."""
    return is_score_record(read_record(resolve_checkpoint(path), verify=False))


def _read_for_loading(path: str | Path) -> tuple[Path, dict]:
    record_path = resolve_checkpoint(path)
    return record_path, read_record(record_path)


def _load_weights(model, record_path: Path, record: dict, device: str | torch.device, ema: bool = True):
    """Weights of ``record_path`` (its weight average, if ``ema`` and it has one) into ``model``, with one
    clear error for a file that does not fit it. ``.checkpoint_path`` names the raw weights file either way."""
    weights_path = record_path.with_suffix(".safetensors")
    averaged = weights_path.with_suffix(".ema.safetensors")
    model.ema = ema and averaged.name in record.get("files", {})
    source = averaged if model.ema else weights_path
    try:
        state = load_file(str(source), device=str(device))
    except Exception as err:  # safetensors raises its own error type on a malformed file
        raise CorruptCheckpoint(f"{source}: not a readable safetensors file ({err})") from err
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {source} does not match architecture '{record['arch']}': "
            f"missing keys {sorted(missing)[:5]}, unexpected keys {sorted(unexpected)[:5]}"
        )
    mismatched = [k for k, v in model.state_dict().items() if v.shape != state[k].shape]
    if mismatched:
        raise ValueError(f"checkpoint {source} does not match architecture '{record['arch']}': "
                         f"shape mismatch in {mismatched[:5]}")
    model.load_state_dict(state)
    model.record = record
    model.checkpoint_path = str(weights_path)
    return model.to(device).eval()


def buffer_path(record_path: Path, rank: int | None = None) -> Path:
    """The buffer file of a checkpoint: the whole buffer, or rank ``rank``'s shard of a distributed run."""
    stem = record_path.name[: -len(".json")]
    return record_path.with_name(f"{stem}.buffer.safetensors" if rank is None else f"{stem}.buffer.rank{rank}.safetensors")


def load_buffer(path: str | Path | None) -> torch.Tensor | None:
    """The replay buffer saved with a checkpoint (a distributed run's shards concatenated in rank order), or None
    (also for ``path=None``: a model that was never saved, such as ``jemkit.wrap``'s)."""
    if path is None:
        return None
    record_path = resolve_checkpoint(path)
    p = buffer_path(record_path)
    if p.is_file():
        return load_file(str(p))["x"]
    world = int(read_record(record_path, verify=False).get("world_size", 1))
    shards = [buffer_path(record_path, r) for r in range(world)] if world > 1 else []
    return torch.cat([load_file(str(s))["x"] for s in shards]) if shards and all(s.is_file() for s in shards) else None


def load_training_state(record_path: Path, device: str | torch.device = "cpu", rank: int | None = None) -> dict:
    """The training state saved with a checkpoint, loaded with ``weights_only=True`` (no code runs).

    With ``rank``, rank ``rank``'s own state of a distributed checkpoint is merged over the shared one.
    """
    state = _load_state(record_path.with_name(record_path.name[: -len(".json")] + ".state.pt"), device)
    if rank is not None:
        state.update(_load_state(record_path.with_name(record_path.name[: -len(".json")] + f".state.rank{rank}.pt"), device))
    return state


def _load_state(p: Path, device: str | torch.device) -> dict:
    try:
        return torch.load(p, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as err:
        raise CorruptCheckpoint(
            f"{p}: refused to load — it is not plain tensors and data (weights_only=True rejected it: "
            f"{' '.join(str(err).split())[:300]})"
        ) from err


# ---------------------------------------------------------------- a user's model

def load_external(model: str | Path, input_shape: tuple[int, int, int], *, weights: str | Path | None = None,
                  num_classes: int | None = None, normalize=None, stem: str | None = None) -> Classifier:
    """A user's classifier as a ``Classifier`` (``jemkit.wrap``): ``torchvision:NAME`` / ``timm:NAME`` with an
    optional weights file (``nets.load_weights``: keys and shapes checked first), or a TorchScript file."""
    if is_external(str(model)):
        if num_classes is None:
            raise ValueError(f"{model} needs the number of classes (--num-classes)")
        net = build_net(str(model), input_shape[0], num_classes, **({"stem": stem} if stem else {}))
        if weights is not None:
            shape = "x".join(map(str, input_shape))
            load_weights(net, weights, f"{model} with {num_classes} classes and input {shape}" + (f", stem {stem}" if stem else ""))
        classifier = wrap(net, input_shape, num_classes, normalize)
        classifier.record["source"] = f"{model} + {weights}" if weights else f"{model} (untrained)"
        return classifier
    if not Path(model).is_file():
        raise FileNotFoundError(f"model {model} is neither torchvision:NAME / timm:NAME nor an existing TorchScript file")
    if weights is not None or stem is not None:
        raise ValueError(f"{model} is a TorchScript file: its weights and stem are inside it (drop --weights / --stem)")
    classifier = wrap(load_torchscript(model), input_shape, num_classes, normalize)
    classifier.record["source"] = f"TorchScript {model}"
    return classifier


def save_model(model: Classifier, run_dir: str | Path, step: int | None = None) -> Path:
    """Write ``model`` (a wrapped or loaded ``Classifier``) as a checkpoint in ``run_dir/checkpoints``;
    ``jemkit.load(run_dir)`` gives it back. Returns the record path."""
    record = {k: v for k, v in model.record.items() if k not in ("format", "step", "files")}
    if record.get("arch") is None:
        what = "a TorchScript model" if "TorchScript" in str(record.get("source")) else f"{record.get('source')}"
        raise ValueError(f"cannot save {what}: jemkit rebuilds a saved model from its architecture name; build it with "
                         "jemkit.nets.build_net('torchvision:NAME', ...) before jemkit.wrap, or save its state_dict")
    step = model.record.get("step", 0) if step is None else step
    return save_checkpoint(Path(run_dir) / "checkpoints", step, model, record)
