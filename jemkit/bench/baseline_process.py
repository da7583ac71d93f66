"""The textbook baseline in a process of its own, as a user's script runs it.

Host-memory behaviour is process-wide: glibc raises its mmap threshold after large blocks are
freed, ``jemkit.memory.steady_host_memory`` turns trimming off for good, and the benchmark's own
ceiling measurements (16–64 MB matrices) move glibc's thresholds too. In one process the baseline
would inherit whatever jemkit or the benchmark left behind, and its allocator churn — one of the
costs the benchmark is there to expose — would depend on the order of measurements. So the
textbook contender runs in a spawned Python process (nothing of the parent's allocator state
carries over), with ``memory="default"`` (glibc as any Python process has it) or ``"steady"``
(the same settings as jemkit, for the arithmetic-only comparison). The parent drives it one call at
a time over a pipe, interleaved with the in-process contenders: the two never run at once. Timing,
page faults and peak RSS are measured in the child around the call itself.
"""
from __future__ import annotations

import io
import multiprocessing
from typing import Any

import torch
from torch import Tensor, nn

from .contenders import NetSpec, Settings, Textbook
from .measure import Sample, measure

MEMORY_MODES = ("default", "steady")


def _pack(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _unpack(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=False)


def _serve(conn, setup: bytes) -> None:
    """Child: build the textbook contender, then answer ('sample' | 'measure', ...) requests."""
    s = _unpack(setup)
    if s["memory"] == "steady":
        from ..memory import steady_host_memory

        steady_host_memory()
    torch.set_num_threads(s["threads"])
    from .contenders import make_net

    device = torch.device(s["device"])
    net = make_net(s["spec"])
    net.load_state_dict(s["state"])
    contender = Textbook(net, s["spec"], s["settings"], device)
    conn.send(b"ready")
    while True:
        request = conn.recv()
        if request is None:
            return
        try:
            op, args = request[0], _unpack(request[1])
            if op == "sample":  # (x0, seed)
                reply = contender.sample(args[0].to(device), args[1]).cpu()
            else:  # measure: (stage, x, y, seed, keep) -> (Sample, the sampler's output if keep else None)
                stage, x, y, seed, keep = args
                x, y, out = x.to(device), y.to(device), {}
                run = (lambda: out.update(x=contender.sample(x, seed))) if stage == "sampler" else (lambda: contender.iterate(x, y))
                sample = measure(run, device)
                reply = (sample, out["x"].cpu() if keep and "x" in out else None)
            conn.send(("ok", _pack(reply)))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send(("error", f"{type(err).__name__}: {err}"))


class TextbookProcess:
    """The ``Textbook`` contender behind a pipe: ``sample`` and ``measure`` run in the child process."""

    name = "textbook"
    bf16 = False

    def __init__(self, net: nn.Module, spec: NetSpec, s: Settings, device: torch.device, memory: str = "default"):
        if memory not in MEMORY_MODES:
            raise ValueError(f"baseline memory must be one of {MEMORY_MODES}, got '{memory}'")
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: fork would copy the parent's malloc state
        self.conn, child = ctx.Pipe()
        setup = {"spec": spec, "settings": s, "device": str(device), "memory": memory,
                 "threads": torch.get_num_threads(), "state": {k: v.cpu() for k, v in net.state_dict().items()}}
        self.process = ctx.Process(target=_serve, args=(child, _pack(setup)), daemon=True, name="jemkit-bench-textbook")
        self.process.start()
        child.close()
        if not self.conn.poll(300) or self.conn.recv() != b"ready":
            self.close()
            raise RuntimeError("bench: the textbook baseline's process did not start")

    def _call(self, op: str, *args) -> Any:
        self.conn.send((op, _pack(args)))
        status, payload = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"bench: the textbook baseline failed in its process: {payload}")
        return _unpack(payload)

    def sample(self, x0: Tensor, seed: int) -> Tensor:
        return self._call("sample", x0.cpu(), seed).to(x0.device)

    def measure(self, stage: str, x: Tensor, y: Tensor, seed: int, keep: bool = False) -> tuple[Sample, Tensor | None]:
        """One call timed in the child; with ``keep`` a sampler call's output comes back too (on x's device)."""
        sample, out = self._call("measure", stage, x.cpu(), y.cpu(), seed, keep)
        return sample, (out.to(x.device) if out is not None else None)

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
