"""The textbook baseline, written from the equations of JEM (Grathwohl et al. 2020, eq. 8 and the
official code's ``sample_q`` and training loop); nothing on its path is jemkit code.

SGLD, float32, one ``autograd.grad`` per step:
    E(x) = −logsumexp_y f(x)[y],   x_{t+1} = x_t − α ∂E(x_t)/∂x_t + σ ε,   ε ~ N(0, I)
Iteration: PCD chains from a replay buffer (a fraction re-initialized U(−1, 1)), then
    L = CE(f(x), y) + mean E(x_data) − mean E(x_sampled),   L.backward(),   optimizer step
with separate forward passes for the CE term and E(x_data), as the official code makes them.
The official code also passes ``retain_graph=True`` to ``autograd.grad``: it only costs memory,
so it is left out here and the baseline is not handicapped by it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def textbook_energy(f: nn.Module, x: Tensor) -> Tensor:
    return -torch.logsumexp(f(x), dim=1)  # (B,)


def textbook_sgld(f: nn.Module, x0: Tensor, *, steps: int, step_size: float, noise: float,
                  generator: torch.Generator | None = None) -> Tensor:
    """JEM's sample_q loop: eval mode, x.data updated in place, the module's mode restored after."""
    was_training = f.training
    f.eval()
    x = x0.clone().requires_grad_(True)
    for _ in range(steps):
        grad = torch.autograd.grad(textbook_energy(f, x).sum(), [x])[0]
        x.data += -step_size * grad + noise * torch.randn(x.shape, generator=generator, device=x.device)
    f.train(was_training)
    return x.detach()


class TextbookJEM:
    """One JEM training iteration as the paper's code does it, with its own replay buffer."""

    def __init__(self, f: nn.Module, opt: torch.optim.Optimizer, shape: tuple[int, ...], *, buffer_size: int,
                 reinit: float, steps: int, step_size: float, noise: float, generator: torch.Generator):
        self.f, self.opt, self.reinit, self.generator = f, opt, reinit, generator
        self.sgld = dict(steps=steps, step_size=step_size, noise=noise)
        device = next(f.parameters()).device
        self.buffer = torch.rand(buffer_size, *shape, generator=generator, device=device) * 2 - 1

    def sample(self, batch: int) -> Tensor:
        g, device = self.generator, self.buffer.device
        index = torch.randint(0, len(self.buffer), (batch,), generator=g, device=device)
        fresh = torch.rand(batch, *self.buffer.shape[1:], generator=g, device=device) * 2 - 1
        choose = (torch.rand(batch, generator=g, device=device) < self.reinit).float().view(-1, *[1] * (self.buffer.dim() - 1))
        x0 = choose * fresh + (1 - choose) * self.buffer[index]
        x = textbook_sgld(self.f, x0, generator=g, **self.sgld)
        self.buffer[index] = x
        return x

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        self.f.train()
        x_q = self.sample(len(x))
        e_data, e_sample = textbook_energy(self.f, x), textbook_energy(self.f, x_q)
        loss = F.cross_entropy(self.f(x), y) + e_data.mean() - e_sample.mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach()
