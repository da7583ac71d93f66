"""The sampler's energy-gradient step x ↦ (E(x [, y]), ∇ₓE), eager and under ``torch.compile``.

Every Langevin step is one forward pass and one input-gradient backward pass of the energy.
``compiled_energy_grad()`` returns the same step compiled by TorchInductor: where the installed
torch can trace ``torch.autograd.grad`` (``torch._dynamo.config.trace_autograd_ops``), the forward
and the backward become one graph; otherwise the forward is compiled and AOTAutograd compiles its
backward. The first call per energy and input shape pays the compilation (tens of seconds on a
CPU; ``jemkit bench`` reports it apart from the timed repetitions). If compilation fails, or no
compiler is installed, one warning is logged and that energy's steps run eagerly from then on.
"""
from __future__ import annotations

import contextlib
import logging
import weakref
from typing import Callable

import torch
from torch import Tensor

log = logging.getLogger("jemkit")

EnergyGrad = Callable[..., tuple[Tensor, Tensor]]
BACKEND = "inductor"  # torch.compile backend (tests swap in a failing one to exercise the fallback)
_compiled: dict[object, Callable] = {}  # backend -> compiled energy_grad
_failed: weakref.WeakSet = weakref.WeakSet()  # energies whose compiled step failed (warned once each)


def energy_grad(energy, x: Tensor, y: Tensor | None, autocast_dtype: torch.dtype | None = None,
                create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """E(x [, y]) of shape (B,), detached, and ∇ₓ Σ_b E(x_b) (x must require grad); forward under autocast if asked."""
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        e = energy(x, y)  # (B,)
    (grad,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
    return e.detach(), grad  # returning e itself would split the compiled graph at autograd.grad


def _trace_autograd() -> contextlib.AbstractContextManager:
    """Let Dynamo trace autograd.grad into the graph, where this torch has the switch."""
    import torch._dynamo

    if hasattr(torch._dynamo.config, "trace_autograd_ops"):
        return torch._dynamo.config.patch(trace_autograd_ops=True)
    return contextlib.nullcontext()


def _compiled_step() -> Callable:
    if BACKEND not in _compiled:
        _compiled[BACKEND] = torch.compile(energy_grad, backend=BACKEND)
    return _compiled[BACKEND]


def compiled_energy_grad(energy, x: Tensor, y: Tensor | None, autocast_dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """``energy_grad`` through torch.compile, falling back to eager (one warning per energy) when compiling fails."""
    if energy in _failed:
        return energy_grad(energy, x, y, autocast_dtype)
    try:
        with _trace_autograd():
            return _compiled_step()(energy, x, y, autocast_dtype)
    except Exception as err:  # noqa: BLE001 - any compiler failure means: run eagerly
        out = energy_grad(energy, x, y, autocast_dtype)  # an error of the energy itself raises here, as without compile
        with contextlib.suppress(TypeError):
            _failed.add(energy)
        reason = " ".join(str(err).split())[:300]
        log.warning(f"sampler.compile: torch.compile of the energy-gradient step failed ({type(err).__name__}: "
                    f"{reason}); sampling eagerly instead")
        return out
