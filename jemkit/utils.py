"""Small helpers shared across jemkit: devices, seeding, and state-restoring context managers."""
from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch
from torch import nn


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed the global RNGs of Python, NumPy and torch (initialization, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed`."""
    return torch.Generator(device=device).manual_seed(seed)


def train_mode(module: nn.Module, norm_eval: bool = False) -> nn.Module:
    """``module.train()``; with ``norm_eval`` its batch-norm layers go back to eval mode (running
    statistics used, not updated: the usual way to fine-tune a pretrained network)."""
    module.train()
    if norm_eval:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    return module


@contextlib.contextmanager
def frozen(module: object, eval_mode: bool = True) -> Iterator[None]:
    """Freeze an nn.Module for input-gradient passes; restore every flag afterwards.

    Parameters get ``requires_grad=False`` (so autograd builds no weight-gradient graph and
    no ``.grad`` is touched) and, if ``eval_mode``, the module and all submodules go to eval
    mode. On exit each submodule's ``training`` flag and each parameter's ``requires_grad``
    are put back exactly as they were. Non-modules pass through untouched.
    """
    if not isinstance(module, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        if eval_mode:
            module.eval()
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training
        for p, flag in flags:
            p.requires_grad_(flag)


def closest(name: str, choices) -> str:
    """A ' (did you mean X?)' hint for an unknown name, or ''."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
