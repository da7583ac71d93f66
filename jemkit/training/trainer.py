"""The training loop: data → model → (sampler + buffer) → objective → optimizer, with logging.

``train(cfg, run_dir)`` writes into ``run_dir``: ``config.yaml`` (resolved config),
``metrics.csv`` (one row every ``train.log_every`` steps), ``samples/step_N.png`` (replay-buffer
grids every ``train.sample_every`` steps) and ``checkpoints/`` (see ``checkpoint.py``).
"""
from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import Config, OptimConfig, save_config
from ..data import ImageData, batches, load_dataset
from ..energy import ClassifierEnergy
from ..evaluation.classification import classification_metrics, predict_logits
from ..images import save_grid
from ..model import Classifier
from ..nets import NETS, build_net
from ..sampling import ReplayBuffer
from ..utils import closest, make_generator, resolve_device, seed_everything
from .checkpoint import save_checkpoint
from .steps import STEPS, make_sampler

LOG_COLUMNS = ["step", "epoch", "lr", "loss", "ce", "acc", "e_data", "e_sample", "gap", "test_acc", "seconds"]


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    test_accuracy: float
    seconds: float


def net_options(cfg: Config) -> dict:
    """The model-config fields that the chosen architecture takes."""
    import inspect

    if cfg.model.arch not in NETS:
        raise ValueError(f"unknown architecture '{cfg.model.arch}'{closest(cfg.model.arch, NETS)}")
    accepted = set(inspect.signature(NETS[cfg.model.arch]).parameters)
    return {k: v for k, v in dataclasses.asdict(cfg.model).items() if k in accepted}


def build_model(cfg: Config, data: ImageData) -> Classifier:
    net = build_net(cfg.model.arch, data.shape[0], data.num_classes, **net_options(cfg))
    preprocessing = {**data.preprocessing, "train_input_noise": cfg.data.input_noise}
    return Classifier(net, data.shape, data.num_classes, preprocessing)


def build_optimizer(params, cfg: OptimConfig, total_steps: int):
    """Adam or SGD with linear warmup over ``warmup`` steps and ×``decay`` at each ``decay_at`` fraction."""
    if cfg.name == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.name == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"unknown optimizer '{cfg.name}'{closest(cfg.name, ['adam', 'sgd'])}; choose adam or sgd")
    milestones = sorted(int(f * total_steps) for f in cfg.decay_at)

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
        return warm * cfg.decay ** sum(step >= m for m in milestones)

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def checkpoint_record(cfg: Config, data: ImageData, model: Classifier) -> dict:
    return {
        "arch": cfg.model.arch,
        "net_options": net_options(cfg),
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "class_names": data.class_names,
        "dataset": data.name,
        "preprocessing": model.preprocessing,
        "temperature": cfg.model.temperature,
        "objective": cfg.train.objective,
        "sampler": dataclasses.asdict(cfg.sampler),
        "config": cfg.to_dict(),
    }


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    ckpts = run_dir / "checkpoints"
    if ckpts.is_dir() and any(ckpts.iterdir()) and not overwrite:
        raise FileExistsError(f"{run_dir} already holds a run (checkpoints/); pass --overwrite to replace it or choose another --out")
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    ckpts.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for p in list(ckpts.iterdir()) + list((run_dir / "samples").iterdir()):
            p.unlink()


def train(cfg: Config, run_dir: str | Path, *, overwrite: bool = False, progress: bool = True) -> TrainResult:
    """Train the model described by ``cfg`` (objective ``jem`` or ``ce``) into ``run_dir``."""
    if cfg.train.objective not in STEPS:
        raise ValueError(f"unknown objective '{cfg.train.objective}'{closest(cfg.train.objective, STEPS)}; choose one of {sorted(STEPS)}")
    if cfg.train.steps <= 0:
        raise ValueError(f"train.steps must be > 0, got {cfg.train.steps}")
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, overwrite)
    save_config(cfg, run_dir / "config.yaml")
    start = time.perf_counter()

    device = resolve_device(cfg.train.device)
    data_gen = seed_everything(cfg.train.seed)  # CPU generator: data order and input noise
    sample_gen = make_generator(device, cfg.train.seed + 1)  # sampler / buffer randomness
    data = load_dataset(cfg.data.name, root=cfg.data.root, download=cfg.data.download,
                        test_fraction=cfg.data.test_fraction, split_seed=cfg.data.split_seed).to(device)
    model = build_model(cfg, data).to(device)
    energy = ClassifierEnergy(model, cfg.model.temperature)
    opt, schedule = build_optimizer(model.parameters(), cfg.optim, cfg.train.steps)

    step_fn, step_kwargs, buffer = STEPS[cfg.train.objective], {}, None
    if cfg.train.objective == "jem":
        buffer = ReplayBuffer(cfg.buffer.size, data.shape, reinit=cfg.buffer.reinit, init=cfg.buffer.init,
                              device=device, generator=sample_gen)
        step_kwargs = {"sampler": make_sampler(cfg.sampler), "buffer": buffer, "train": cfg.train, "generator": sample_gen}

    record = checkpoint_record(cfg, data, model)
    stream = batches(data.x_train, data.y_train, cfg.data.batch_size, generator=data_gen, input_noise=cfg.data.input_noise)
    steps_per_epoch = len(data.x_train) // cfg.data.batch_size
    sums: dict[str, torch.Tensor] = {}
    count, test_acc = 0, float("nan")
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        log = csv.DictWriter(f, LOG_COLUMNS)
        log.writeheader()
        bar = tqdm(range(1, cfg.train.steps + 1), desc=f"train {cfg.preset}", disable=not progress, dynamic_ncols=True)
        for step in bar:
            model.train()
            x, y = next(stream)
            out = step_fn(energy, x, y, **step_kwargs)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            schedule.step()
            for k, v in {"loss": out.loss.detach(), **out.stats}.items():
                sums[k] = sums.get(k, 0) + v
            count += 1
            last = step == cfg.train.steps
            row = {}
            if step % cfg.train.eval_every == 0 or last:
                test_acc = classification_metrics(predict_logits(model, data.x_test), data.y_test)["accuracy"]
                row["test_acc"] = round(test_acc, 5)
            if step % cfg.train.log_every == 0 or last:
                means = {k: (v / count).item() for k, v in sums.items()}  # one host sync per log interval
                if not all(map(lambda v: v == v and abs(v) != float("inf"), means.values())):
                    raise FloatingPointError(f"non-finite training statistics at step {step}: {means}")
                row.update({k: round(v, 6) for k, v in means.items()})
                sums, count = {}, 0
                bar.set_postfix({k: f"{means[k]:.3f}" for k in ("loss", "acc") if k in means} | {"test_acc": f"{test_acc:.3f}"})
            if row:
                row.update(step=step, epoch=round(step / steps_per_epoch, 3), lr=opt.param_groups[0]["lr"],
                           seconds=round(time.perf_counter() - start, 2))
                log.writerow(row)
                f.flush()
            if buffer is not None and (step % cfg.train.sample_every == 0 or last):
                save_grid(buffer.x[:64], run_dir / "samples" / f"step_{step:08d}.png", nrow=8)
            if (cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0) or last:
                ckpt = save_checkpoint(run_dir / "checkpoints", step, model, record, buffer.x if buffer is not None else None)
        bar.close()
    return TrainResult(run_dir, ckpt, test_acc, time.perf_counter() - start)
