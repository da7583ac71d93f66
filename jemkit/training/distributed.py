"""Data-parallel training across processes started by ``torchrun`` (torch.distributed + DDP).

jemkit spawns no processes of its own: ``torchrun --nproc_per_node=N -m jemkit train ...`` starts N
copies, and each reads its place from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT). Without WORLD_SIZE > 1 every helper here is a no-op for one process.

Semantics (see the README's distributed section):
  - ``data.batch_size`` is the *global* batch: rank r trains on rows [r·B/W, (r+1)·B/W) of the batch
    a single process would draw, so the recipe (lr, batch) does not change with W.
  - each rank keeps a replay-buffer shard of ``buffer.size / W`` chains and its own sampler generator;
  - the loss backward runs through DDP (gradients averaged over ranks); sampling runs on the bare
    module, so DDP's hooks never see the input-gradient passes;
  - logged metrics and guard decisions are reduced over ranks; only rank 0 writes files other
    than its own checkpoint shard.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (NCCL needs CUDA)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def device_for(name: str) -> torch.device:
    """``train.device`` for this rank: 'auto' and 'cuda' become cuda:LOCAL_RANK under torchrun."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and env_world_size() > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init(device: torch.device, timeout_s: float = 1800.0) -> World:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a one-rank World otherwise.

    Reuses a process group the caller already initialized.
    """
    if env_world_size() <= 1 and not dist.is_initialized():
        return World(device=device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return World(dist.get_rank(), dist.get_world_size(), local, device)


def shutdown() -> None:
    """Destroy the process group (at the end of training, when this module created it)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def check_world(world: World, batch_size: int, buffer_size: int | None, num_classes: int | None,
                sample_batch: int = 0) -> None:
    """Refuse settings that cannot be split evenly over the ranks (one clear line)."""
    for key, value in (("data.batch_size", batch_size), ("train.sample_batch", sample_batch)):
        if value % world.size:
            raise ValueError(f"{key} ({value}) is global and must be divisible by the number of processes ({world.size})")
    if buffer_size is not None:
        shard = buffer_size // world.size
        if buffer_size % world.size or (num_classes and shard % num_classes):
            per = f"a multiple of num_classes ({num_classes})" if num_classes else "a whole number"
            raise ValueError(f"buffer.size ({buffer_size}) is split over {world.size} processes and each shard must be "
                             f"{per}; got {buffer_size / world.size:g} chains per rank")


def mean(values: dict[str, Tensor], world: World) -> dict[str, Tensor]:
    """Average each scalar over the ranks (one all-reduce; keys in sorted order on every rank)."""
    if not world.active or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float64).reshape(()).to(world.device) for k in keys])
    dist.all_reduce(stacked)
    stacked /= world.size
    return dict(zip(keys, stacked))


def total(values: list[float], world: World) -> list[float]:
    """Sum numbers over the ranks."""
    if not world.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.tolist()


def ranks_with(flag: bool, world: World) -> list[int]:
    """The ranks whose ``flag`` is set (one all-reduce) — the same list on every rank, so that every
    rank takes the same decision (roll back after a divergence, stop after a signal)."""
    if not world.active:
        return [0] if flag else []
    flags = torch.zeros(world.size, device=world.device)
    flags[world.rank] = float(flag)
    dist.all_reduce(flags)
    return [r for r in range(world.size) if flags[r] > 0]


def on_main(fn: Callable[[], T], world: World) -> T:
    """Run ``fn`` on rank 0 and give every rank its result — or raise its exception on every rank."""
    if not world.active:
        return fn()
    box: list = [None]
    if world.main:
        try:
            box[0] = (True, fn())
        except Exception as err:  # noqa: BLE001 — re-raised on every rank below
            box[0] = (False, err)
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def gather(obj: T, world: World) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not world.active:
        return [obj]
    out: list = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


class RankSlice:
    """Rank r's rows [r·b, (r+1)·b) of every global batch a stream yields (b = batch / W).

    Every rank runs the same stream (same seed and state), so together the ranks see exactly the
    batches one process would, and the stream's state is the same on every rank.
    """

    def __init__(self, stream, world: World):
        self.stream, self.world = stream, world

    @property
    def per_epoch(self) -> int:
        return self.stream.per_epoch

    def __iter__(self) -> "RankSlice":
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        x, y = next(self.stream)
        b = x.shape[0] // self.world.size
        rows = slice(self.world.rank * b, (self.world.rank + 1) * b)
        return x[rows], y[rows]

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)
