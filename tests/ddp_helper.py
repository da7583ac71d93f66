"""Run under ``torchrun --nproc_per_node=2`` by tests/test_distributed.py (not a test module itself).

Builds the trainer's Run on each rank (DDP-wrapped loss energy, bare-module chains), and writes to
argv[1] (rank 0): the DDP-averaged gradients of one CE step and one JEM step with given samples, each
rank taking its rows of a fixed global batch; whether two full JEM steps (sampler on the bare module)
left every rank with the same gradients and weights; and a reduced metric.
"""
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

from jemkit.config import load_preset
from jemkit.objectives import jem_hybrid
from jemkit.training import distributed
from jemkit.training.steps import STEPS
from jemkit.training.run import Run

TINY = ["model.width=8", "buffer.size=100", "sampler.steps=3", "data.batch_size=16"]


def global_batch(run: Run):
    x, y = run.data.x_train[:16], run.data.y_train[:16]
    x_sampled = torch.rand(16, *run.data.shape, generator=torch.Generator().manual_seed(7)) * 2 - 1
    return x, y, x_sampled


def grads(run: Run) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in run.model.named_parameters()}


def main(out: str) -> None:
    world = distributed.init(torch.device("cpu"))
    assert world.size == 2
    run = Run(load_preset("digits-jem", TINY), Path(tempfile.mkdtemp()), world)
    x, y, xs = global_batch(run)
    rows = slice(world.rank * 8, (world.rank + 1) * 8)
    result = {"weights": {k: v.clone() for k, v in run.model.state_dict().items()}}

    run.opt.zero_grad(set_to_none=True)
    STEPS["ce"](run.energy, x[rows], y[rows]).loss.backward()
    result["ce"] = grads(run)
    run.opt.zero_grad(set_to_none=True)
    jem_hybrid(run.energy, x[rows], y[rows], xs[rows]).loss.backward()
    result["jem"] = grads(run)

    step_fn, same = run.step_fn(), True
    for _ in range(2):  # full steps: chains on the bare module, loss backward through DDP
        xb, yb = next(run.stream)
        run.opt.zero_grad(set_to_none=True)
        step_fn(run.energy, xb, yb).loss.backward()
        for t in [*grads(run).values(), *[p.detach() for p in run.model.parameters()]]:
            both = [torch.empty_like(t) for _ in range(2)]
            dist.all_gather(both, t)
            same &= torch.equal(both[0], both[1])
        run.opt.step()
    result["ranks_agree"] = same
    result["mean_of_rank"] = distributed.mean({"r": torch.tensor(float(world.rank))}, world)["r"].item()
    result["batch_rows"] = distributed.gather(xb.shape[0], world)
    if world.main:
        torch.save(result, out)
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
