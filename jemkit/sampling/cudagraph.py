"""CUDA graphs for fixed-shape Langevin chains: one step captured once, replayed every step.

A step  x ← clamp(x − η·clip(∇ₓE(x, y)) + σ·z)  launches dozens of small kernels (a forward and an
input-gradient backward pass); at batch 64 on a GPU their launch overhead, not arithmetic, sets the
pace. The step is captured into a ``torch.cuda.CUDAGraph`` over static tensors x, y, z (one graph
per energy, shape, memory format and options) and replayed ``steps`` times.

Randomness: before each replay z is drawn eagerly from the caller's generator into the static z, so
the chain consumes the generator exactly as the eager loop does (no graph-side RNG state).
Safety: warm-up steps run on a side stream with ``torch.cuda.set_sync_debug_mode("error")``, so an
energy that syncs with the host (``.item()``, ``if tensor``) is found before capture; a new graph is
checked once against an eager step; the graph reads parameters in place (optimizer steps and
``load_state_dict`` are seen) and is captured again when a parameter or buffer is replaced by a new
tensor. Where capture fails or the check disagrees, one warning is logged and that energy samples
eagerly. Warm-up and the check run three extra steps on a copy of the chains when a graph is
captured (in train-mode batch norm, ``eval_mode=False``, they update its running statistics).
"""
from __future__ import annotations

import itertools
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from .compiled import EnergyGrad, energy_grad
from .update import StepOptions, sgld_update_

log = logging.getLogger("jemkit")

MAX_GRAPHS = 4  # captured graphs kept per energy (each holds one step's activations on the GPU)
_graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # energy -> OrderedDict[key, _Graph | None]


def check_graphable(energy, x: Tensor) -> None:
    """Refuse, in one line, what CUDA graphs cannot serve."""
    if x.device.type != "cuda":
        raise ValueError(f"sampler.cuda_graph needs the chains on a CUDA device, they are on {x.device}; "
                         "set sampler.cuda_graph=false on CPU")
    if not isinstance(energy, nn.Module):
        raise TypeError("sampler.cuda_graph needs the energy to be an nn.Module (its parameters are checked "
                        f"before every replay), got {type(energy).__name__}")


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    x: Tensor  # (B, ...) static chain state, requires grad
    y: Tensor | None  # (B,) static classes
    z: Tensor  # (B, ...) static N(0, I) draw, filled before each replay
    e: Tensor  # (B,) energies before the last replayed step
    grad: Tensor  # (B, ...) ∇ₓE before the last replayed step
    pointers: tuple[int, ...]  # parameter and buffer addresses the graph reads


def _pointers(energy: nn.Module) -> tuple[int, ...]:
    return tuple(t.data_ptr() for t in itertools.chain(energy.parameters(), energy.buffers()))


def _key(energy: nn.Module, x: Tensor, y: Tensor | None, o: StepOptions, grad_fn: EnergyGrad) -> tuple:
    modes = tuple(m.training for m in energy.modules())
    y_sig = None if y is None else (y.dtype, tuple(y.shape))
    return (tuple(x.shape), x.stride(), x.dtype, x.device, y_sig, o.step_size, o.noise, o.grad_clip, o.clamp,
            o.autocast_dtype, grad_fn, modes)


def _capture(energy: nn.Module, x: Tensor, y: Tensor | None, o: StepOptions, grad_fn: EnergyGrad) -> _Graph:
    x_s = x.detach().clone().requires_grad_(True)  # keeps x's memory format
    y_s = None if y is None else y.clone()
    z_s = torch.zeros(x.shape, device=x.device, dtype=x.dtype)  # laid out as torch.randn's output

    def step() -> tuple[Tensor, Tensor]:
        e, grad = grad_fn(energy, x_s, y_s, o.autocast_dtype)
        sgld_update_(x_s, grad, z_s, o)
        return e, grad

    side = torch.cuda.Stream(device=x.device)
    side.wait_stream(torch.cuda.current_stream(x.device))
    with torch.cuda.stream(side):
        step()  # first call: cuDNN/cuBLAS handles, autograd's device thread, torch.compile's compilation
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")  # a host sync cannot be captured: find it here, eagerly
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode(mode)
    torch.cuda.current_stream(x.device).wait_stream(side)
    x_s.detach().copy_(x)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        e_s, grad_s = step()
    g = _Graph(graph, x_s, y_s, z_s, e_s, grad_s, _pointers(energy))
    _self_check(energy, g, x, o)
    return g


def _self_check(energy: nn.Module, g: _Graph, x: Tensor, o: StepOptions) -> None:
    """One replay against one eager step from the same x with z = 1: the displacements must agree."""
    g.z.fill_(1.0)
    g.x.detach().copy_(x)
    g.graph.replay()
    ref = x.detach().clone().requires_grad_(True)
    _, grad = energy_grad(energy, ref, g.y, o.autocast_dtype)
    ref = sgld_update_(ref, grad, g.z, o)
    moved, expected = g.x.detach() - x, ref - x
    err = (moved - expected).abs().max().item()
    bound = 0.02 * expected.abs().max().item() + 1e-6
    if not err <= bound:
        raise RuntimeError(f"the replayed step differs from the eager step by {err:.3g} (allowed {bound:.3g})")


def _graph_for(energy: nn.Module, x: Tensor, y: Tensor | None, o: StepOptions, grad_fn: EnergyGrad) -> _Graph | None:
    cache = _graphs.setdefault(energy, OrderedDict())
    key = _key(energy, x, y, o, grad_fn)
    if key in cache:
        g = cache[key]
        if g is None:  # capture failed before (warned then)
            return None
        if g.pointers == _pointers(energy):
            cache.move_to_end(key)
            return g
        del cache[key]  # a parameter or buffer was replaced: capture again
    try:
        with torch.cuda.device(x.device):
            g = _capture(energy, x, y, o, grad_fn)
    except Exception as err:  # noqa: BLE001 - any capture failure means: sample eagerly
        cache[key] = None
        reason = " ".join(str(err).split())[:300]
        log.warning(f"sampler.cuda_graph: capturing the SGLD step failed ({type(err).__name__}: {reason}); "
                    "sampling eagerly instead")
        return None
    cache[key] = g
    while len(cache) > MAX_GRAPHS:
        cache.popitem(last=False)
    return g


def graphed_chain(
    energy: nn.Module,
    x: Tensor,
    y: Tensor | None,
    *,
    steps: int,
    options: StepOptions,
    generator: torch.Generator | None,
    callback: Callable[[dict], None] | None,
    grad_fn: EnergyGrad = energy_grad,
) -> Tensor | None:
    """Run ``steps`` replays of the captured step from x; None where no graph can serve (then sample eagerly).

    Call inside ``frozen(energy)`` and ``torch.enable_grad()`` (as ``langevin_chain`` does).
    The callback gets copies of the step's energy and gradient (the static ones are overwritten).
    """
    g = _graph_for(energy, x, y, options, grad_fn)
    if g is None:
        return None
    g.x.detach().copy_(x)
    if y is not None:
        g.y.copy_(y)
    for t in range(steps):
        torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype, out=g.z)
        g.graph.replay()
        if callback is not None:
            callback({"step": t, "x": g.x.detach(), "energy": g.e.clone(), "grad": g.grad.clone()})
    return g.x.detach().clone()
