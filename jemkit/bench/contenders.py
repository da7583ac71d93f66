"""What the benchmark runs: networks by name, jemkit variants through jemkit's real code paths, and
the textbook baseline (``reference.py``), all behind one small interface."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..config import GuardConfig, OptimConfig, SamplerConfig, TrainConfig
from ..energy import ClassifierEnergy
from ..model import Classifier
from ..nets import build_net
from ..sampling import ReplayBuffer
from ..training.guard import check_step
from ..sampling import make_sampler
from ..training.steps import jem_step
from ..training.build import build_optimizer
from ..utils import closest
from .reference import TextbookJEM, textbook_sgld


@dataclass(frozen=True)
class NetSpec:
    arch: str
    shape: tuple[int, int, int]  # (C, H, W)
    options: dict = field(default_factory=dict)


NETS = {  # the Fashion-MNIST preset's backbone, and JEM's WRNs (no batch norm)
    "fmnist": NetSpec("cnn", (1, 28, 28), {"width": 16, "head_grid": 7}),
    "wrn-28-2": NetSpec("wrn", (3, 32, 32), {"depth": 28, "widen": 2, "norm": "none"}),
    "wrn-28-10": NetSpec("wrn", (3, 32, 32), {"depth": 28, "widen": 10, "norm": "none"}),
}
QUICK_NETS = {  # --quick: the same architectures, tiny, for smoke runs and tests
    "fmnist": NetSpec("cnn", (1, 28, 28), {"width": 4, "head_grid": 7}),
    "wrn-28-2": NetSpec("wrn", (3, 16, 16), {"depth": 10, "widen": 1, "norm": "none"}),
    "wrn-28-10": NetSpec("wrn", (3, 16, 16), {"depth": 10, "widen": 2, "norm": "none"}),
}
FLAGS = {"fp32": None, "bf16": "bf16", "cl": "channels_last", "channels_last": "channels_last", "compile": "compile",
         "graph": "cuda_graph", "cuda_graph": "cuda_graph"}


@dataclass(frozen=True)
class Variant:
    """A jemkit configuration: sampler.bf16, train.channels_last, sampler.compile, sampler.cuda_graph."""

    name: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = False


def parse_variant(text: str) -> Variant:
    """'fp32', 'bf16+cl', 'compile', 'graph+bf16+cl', ... (fp32 = jemkit's defaults)."""
    flags = set()
    for token in text.strip().split("+"):
        if token not in FLAGS:
            raise ValueError(f"unknown bench variant part '{token}'{closest(token, FLAGS)}; combine {', '.join(FLAGS)} with +")
        if FLAGS[token]:
            flags.add(FLAGS[token])
    return Variant(text.strip(), **{f: True for f in flags})


def make_net(spec: NetSpec, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_net(spec.arch, spec.shape[0], 10, **spec.options)


@dataclass
class Settings:
    batch: int
    steps: int
    buffer_size: int
    step_size: float = 1.0  # JEM: SGLD step 1, noise 0.01, 5% re-initialization, Adam 1e-4
    noise: float = 0.01
    reinit: float = 0.05
    lr: float = 1e-4


class Textbook:
    """The baseline: ``textbook_sgld`` and ``TextbookJEM`` on a copy of the network."""

    name = "textbook"
    bf16 = False

    def __init__(self, net: nn.Module, spec: NetSpec, s: Settings, device: torch.device):
        self.f, self.s = copy.deepcopy(net).to(device), s
        self.generator = torch.Generator(device).manual_seed(0)
        opt = torch.optim.Adam(self.f.parameters(), lr=s.lr)
        self.jem = TextbookJEM(self.f, opt, spec.shape, buffer_size=s.buffer_size, reinit=s.reinit, steps=s.steps,
                               step_size=s.step_size, noise=s.noise, generator=self.generator)

    def sample(self, x0: Tensor, seed: int) -> Tensor:
        g = torch.Generator(x0.device).manual_seed(seed)
        return textbook_sgld(self.f, x0, steps=self.s.steps, step_size=self.s.step_size, noise=self.s.noise, generator=g)

    def iterate(self, x: Tensor, y: Tensor) -> None:
        self.jem.step(x, y)


class Jemkit:
    """A jemkit variant: ``make_sampler`` + ``sgld``, and ``jem_step`` + the guard's check + optimizer step as
    the trainer runs them (model, data and buffer in channels-last memory format when asked)."""

    def __init__(self, net: nn.Module, spec: NetSpec, s: Settings, device: torch.device, variant: Variant):
        self.name, self.s, self.variant, self.bf16 = variant.name, s, variant, variant.bf16
        if variant.cuda_graph and device.type != "cuda":
            raise ValueError(f"bench variant '{variant.name}' uses CUDA graphs and needs a CUDA device, not {device}")
        model = Classifier(copy.deepcopy(net), spec.shape, 10).to(device)
        model.check_finite = False  # as the trainer runs it
        self.memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
        model.to(memory_format=self.memory_format)
        self.model, self.energy = model, ClassifierEnergy(model)
        self.sampler = make_sampler(SamplerConfig(steps=s.steps, step_size=s.step_size, noise=s.noise, bf16=variant.bf16,
                                                  compile=variant.compile, cuda_graph=variant.cuda_graph))
        self.generator = torch.Generator(device).manual_seed(0)
        self.buffer = ReplayBuffer(s.buffer_size, spec.shape, reinit=s.reinit, device=device, generator=self.generator)
        self.buffer.x = self.buffer.x.contiguous(memory_format=self.memory_format)
        self.opt = build_optimizer(model.parameters(), OptimConfig(lr=s.lr, warmup=0))
        self.train, self.guard = TrainConfig(), GuardConfig()

    def sample(self, x0: Tensor, seed: int) -> Tensor:
        x0 = x0.contiguous(memory_format=self.memory_format)
        return self.sampler(self.energy, x0, generator=torch.Generator(x0.device).manual_seed(seed))

    def iterate(self, x: Tensor, y: Tensor) -> None:
        self.model.train()
        x = x.contiguous(memory_format=self.memory_format)
        out = jem_step(self.energy, x, y, sampler=self.sampler, buffer=self.buffer, train=self.train,
                       generator=self.generator)
        if check_step(self.guard, out) is not None:
            raise FloatingPointError("bench: the jemkit iteration diverged")
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        self.opt.step()
