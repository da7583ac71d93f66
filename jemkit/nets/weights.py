"""A user's weights file into a net, and a user's TorchScript file as a net.

Weights: ``.safetensors`` (safetensors), or ``.pt`` / ``.pth`` / ``.bin`` read with
``torch.load(weights_only=True)`` (tensors and plain data only: no code runs). The file holds a
state_dict, possibly nested under ``state_dict`` / ``model`` / ``model_state_dict`` (training-loop
checkpoints), with a ``module.`` (DataParallel / DDP) or ``_orig_mod.`` (``torch.compile``) prefix.
Keys and shapes are compared before anything loads; a file that does not fit says, in one line, which
layer differs first and how.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

NESTING = ("state_dict", "model", "model_state_dict")
PREFIXES = ("module.", "_orig_mod.")
TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file, un-nested and without a DataParallel / compile prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    state = _read(path)
    for key in NESTING:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a state_dict (a mapping of names to tensors, possibly under "
                         f"{' / '.join(NESTING)})")
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _read(path: Path):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error type on a malformed file
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    if path.suffix not in TORCH_SUFFIXES:
        raise ValueError(f"{path}: weights must be .safetensors or {' / '.join(TORCH_SUFFIXES)} (torch.save)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as err:
        raise ValueError(f"{path}: refused — not plain tensors and data (weights_only=True rejected it: "
                         f"{' '.join(str(err).split())[:200]})") from err


def load_weights(net: nn.Module, path: str | Path, describe: str | None = None) -> nn.Module:
    """Load the weights file ``path`` into ``net`` (strict), after checking every key and shape.

    ``describe`` names the net in the error (e.g. "torchvision:resnet18 with 10 classes and input 1x28x28").
    """
    state = read_state_dict(path)
    problem = mismatch(net.state_dict(), state)
    if problem:
        raise ValueError(f"{Path(path).name} does not fit {describe or type(net).__name__}: {problem}")
    net.load_state_dict(state)
    return net


def mismatch(expected: dict[str, Tensor], found: dict[str, Tensor]) -> str:
    """'' when ``found`` has exactly the keys and shapes of ``expected``, else what differs first (+ a hint)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        parts = [f"{len(missing)} keys of the model are not in the file (first: {missing[0]})" if missing else "",
                 f"{len(unexpected)} keys in the file are not in the model (first: {unexpected[0]})" if unexpected else ""]
        return "; ".join(p for p in parts if p) + "; is it another architecture?"
    keys = list(expected)
    for i, key in enumerate(keys):
        file_shape, model_shape = tuple(found[key].shape), tuple(expected[key].shape)
        if file_shape != model_shape:
            hint = _hint(file_shape, model_shape, is_first=i == 0, is_head=i >= len(keys) - 2)
            return f"{key} is {file_shape} in the file, {model_shape} in the model" + (f"; try {hint}" if hint else "")
    return ""


def _hint(file_shape: tuple, model_shape: tuple, is_first: bool, is_head: bool) -> str:
    """Which command-line option would make the model's shape the file's."""
    if is_head and file_shape[1:] == model_shape[1:]:
        return f"--num-classes {file_shape[0]}"
    if not is_first or len(file_shape) != 4:
        return ""
    hints = []
    if file_shape[2] != model_shape[2]:
        hints.append("--stem small" if file_shape[2] == 3 else "--stem default")
    if file_shape[1] != model_shape[1]:
        hints.append(f"--input {file_shape[1]}xHxW")
    return " / ".join(hints)


def load_torchscript(path: str | Path) -> nn.Module:
    """A TorchScript model (``torch.jit.save``) on the CPU. It runs its own compiled code: load only files you trust."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TorchScript file {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch ≥ 2.9 marks torch.jit.load deprecated; it is the file's format
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as err:
        raise ValueError(f"{path} is not a TorchScript file (torch.jit.load: {' '.join(str(err).split())[:200]})") from err
