"""A user's own classifier, as jemkit finds it: a torchvision ResNet-18 trained on Fashion-MNIST in plain PyTorch.

The ResNet is adapted to 1×28×28 the usual way (first conv 3×3 stride 1 and one input channel, no
max-pool: what ``--stem small`` rebuilds), trained with its own input convention (pixels in [0, 1]
normalized by the training set's mean and std) for ``--minutes`` or ``--steps``, and saved as a plain
state_dict in safetensors. The script ends by printing the ``jemkit eval`` and ``jemkit finetune`` commands
that take it from there (``examples/resnet18_fmnist.sh`` runs them all).

    python examples/resnet18_fmnist.py --out runs/resnet18-fmnist --minutes 10
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torch import nn

from jemkit.data import load_dataset


def small_input_resnet18(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR-style stem (He et al. 2016, §4.2) for small images."""
    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def own_convention(x_train: torch.Tensor, x_test: torch.Tensor):
    """This model's input: pixels in [0, 1] (jemkit's x in [−1, 1] as (x + 1)/2), normalized per channel by the
    training set's mean and std. Returns ((train, test), mean, std)."""
    x01_train, x01_test = (x_train + 1) / 2, (x_test + 1) / 2
    mean, std = x01_train.mean((0, 2, 3)), x01_train.std((0, 2, 3))
    m, s = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    return ((x01_train - m) / s, (x01_test - m) / s), mean, std


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 2-pixel shifts (pad and crop) and horizontal flips, per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (2, 2, 2, 2))
    dy, dx = (torch.randint(0, 5, (2,), generator=generator)).tolist()
    x = padded[:, :, dy : dy + h, dx : dx + w]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = sum((net(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    net.train()
    return correct / len(x)


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> tuple[int, float]:
    """SGD with Nesterov momentum and a cosine learning rate, lr · (1 + cos πp)/2, over the run's progress
    p = max(step / ``args.steps``, elapsed / ``args.minutes``): the schedule ends when either budget does, so
    a slow machine still anneals to zero inside its time budget."""
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    g = torch.Generator().manual_seed(args.seed)
    start, step, progress = time.perf_counter(), 0, 0.0
    while progress < 1:
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * progress))
        idx = torch.randint(0, len(x), (args.batch_size,), generator=g).to(x.device)
        loss = F.cross_entropy(net(augment(x[idx], g)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        progress = max(step / args.steps, (time.perf_counter() - start) / (60 * args.minutes))
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f}s)", flush=True)
    return step, time.perf_counter() - start


def commands(weights: Path, data: str, shape: tuple, num_classes: int, mean: list, std: list, out: Path) -> tuple[str, str]:
    """The ``jemkit eval`` and ``jemkit finetune`` lines that rebuild this net (``--stem small``) and feed it this
    script's normalization."""
    model = (f"--model torchvision:resnet18 --weights {weights} --stem small "
             f"--normalize {','.join(f'{v:.6f}' for v in [*mean, *std])} --data {data}")
    return (f"jemkit eval {model} --num-classes {num_classes} --input {'x'.join(map(str, shape))} --out {out / 'eval'}",
            f"jemkit finetune {model} --out {out / 'finetune'}")


def main(argv: list[str] | None = None) -> dict:
    """Train, save, print the next commands; returns {"command", "finetune_command", "test_accuracy", "steps", "seconds"}."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="directory for the weights file")
    p.add_argument("--minutes", type=float, default=10.0, help="training time budget (default 10)")
    p.add_argument("--steps", type=int, default=6000, help="at most this many steps (default 6000); the LR schedule ends with whichever of --steps and --minutes runs out first")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--data", default="fashion-mnist", help="a jemkit dataset spec (default fashion-mnist)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = load_dataset(args.data)
    (x_train, x_test), mean, std = own_convention(data.x_train, data.x_test)
    x_train, x_test = x_train.to(device), x_test.to(device)
    net = small_input_resnet18(data.shape[0], data.num_classes).to(device)
    steps, seconds = train(net, x_train, data.y_train.to(device), args)
    test_accuracy = accuracy(net, x_test, data.y_test.to(device))
    print(f"{steps} steps in {seconds:.0f}s on {device}; test accuracy {test_accuracy:.4f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "resnet18.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(weights))
    command, finetune = commands(weights, args.data, data.shape, data.num_classes, mean.tolist(), std.tolist(), out)
    print(f"weights: {weights}\nevaluate: {command}\nfine-tune: {finetune}")
    return {"command": command, "finetune_command": finetune, "test_accuracy": test_accuracy, "steps": steps, "seconds": seconds}


if __name__ == "__main__":
    main()
