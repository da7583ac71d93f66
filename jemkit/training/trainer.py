"""The training loop: data → model → (sampler + buffer) → objective → optimizer, with logging,
checkpoints, exact resume, a divergence guard, and clean stops on SIGINT/SIGTERM.

``train(cfg, run_dir)`` writes into ``run_dir``: ``config.yaml`` (resolved config),
``metrics.csv`` (one row every ``train.log_every`` steps), ``events.log`` (recoveries, resumes,
interruptions), ``samples/step_N.png`` (replay-buffer grids) and ``checkpoints/`` (see
``checkpoint.py``). Started again with the same config, it resumes from the last valid
checkpoint and ends with the same weights as an uninterrupted run (bitwise on CPU).
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import inspect
import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import SCORE_OBJECTIVES, Config, OptimConfig, load_config, save_config, validate
from ..data import BatchStream, ImageData, labelled_subset, load_dataset
from ..energy import ClassifierEnergy
from ..images import save_grid, save_samples
from ..model import Classifier, ScoreModel, predict_logits
from ..memory import host_memory
from ..nets import NETS, build_net
from ..objectives import LossOutput
from ..sampling import ReplayBuffer, build_init, draw_score_samples, make_sampler
from ..utils import make_generator, resolve_device, seed_everything
from . import distributed
from ..checkpoint import (CorruptCheckpoint, buffer_path, latest_valid, list_checkpoints, load_training_state, prune_checkpoints,
                         read_record, save_checkpoint, save_shard)
from .distributed import RankSlice, World
from .guard import DivergenceError, GuardState, check_accuracy, check_step
from .monitor import TensorBoard, buffer_stats
from .steps import STEPS, held_out_score_loss

LOG_COLUMNS = ["step", "epoch", "lr", "loss", "ce", "acc", "e_data", "e_sample", "gap", "gap_xy", "sgld_grad_norm",
               "accept_rate", "buffer_mean", "buffer_std", "score_norm", "test_acc",
               "test_loss", "seconds", "rss_mb", "peak_rss_mb", "faults_per_step"]
log = logging.getLogger("jemkit")


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    test_accuracy: float
    seconds: float
    test_loss: float | None = None  # score models: the last held-out score-matching loss


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM stopped training; a checkpoint of the last finished step was saved."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: stopped after step {step}, checkpoint saved to {checkpoint}; "
                         "run the same command again to resume")


# ---------------------------------------------------------------- building blocks

def net_options(cfg: Config) -> dict:
    """The model-config fields that the chosen architecture takes."""
    accepted = set(inspect.signature(NETS[cfg.model.arch]).parameters) | {"spectral_norm"}
    return {k: v for k, v in dataclasses.asdict(cfg.model).items() if k in accepted}


def build_model(cfg: Config, data: ImageData) -> Classifier | ScoreModel:
    net = build_net(cfg.model.arch, data.shape[0], data.num_classes, **net_options(cfg))
    preprocessing = {**data.preprocessing, "train_input_noise": cfg.data.input_noise}
    if cfg.train.objective in SCORE_OBJECTIVES:
        return ScoreModel(net, data.shape, preprocessing)
    return Classifier(net, data.shape, data.num_classes, preprocessing)


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_at(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Linear warmup over ``warmup`` steps, then ×``decay`` at each ``decay_at`` fraction of training."""
    warm = min(1.0, step / cfg.warmup) if cfg.warmup > 0 else 1.0
    return cfg.lr * warm * cfg.decay ** sum(step > int(f * total_steps) for f in cfg.decay_at)


def checkpoint_record(cfg: Config, data: ImageData, model: Classifier | ScoreModel) -> dict:
    return {
        "arch": cfg.model.arch,
        "net_options": net_options(cfg),
        "input_shape": list(model.input_shape),
        "num_classes": data.num_classes,
        "class_names": data.class_names,
        "dataset": data.name,
        "preprocessing": model.preprocessing,
        "temperature": cfg.model.temperature,
        "objective": cfg.train.objective,
        "config": cfg.to_dict(),
    }


def rng_state() -> dict:
    """Every global RNG: Python, NumPy, torch CPU and CUDA (as tensors and plain data, for weights_only)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(mt), gauss], "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# ---------------------------------------------------------------- the run

class Run:
    """Everything a training run holds, and how it is saved and restored.

    Under torchrun (``world.active``) the model is wrapped in DDP for the loss (``energy``), chains
    run on the bare module (``chain_energy``), each rank takes its slice of every global batch and
    keeps its own buffer shard and sampler generator (seeded ``seed + 1 + rank``).
    """

    def __init__(self, cfg: Config, run_dir: Path, world: World | None = None):
        self.cfg, self.run_dir, self.world = cfg, run_dir, world or World()
        self.device = self.world.device if self.world.active else resolve_device(cfg.train.device)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True)
        seed_everything(cfg.train.seed + self.world.rank)  # initialization (rank 0's is broadcast by DDP) and dropout
        d = cfg.data
        self.data = load_dataset(d.name, root=d.root, download=d.download, test_fraction=d.test_fraction,
                                 split_seed=d.split_seed).to(self.device)
        self.model = build_model(cfg, self.data).to(self.device)
        self.model.check_finite = False  # data are validated once at load; the guard watches the rest
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.data.x_train = self.data.x_train.contiguous(memory_format=torch.channels_last)
        self.scores = cfg.train.objective in SCORE_OBJECTIVES  # a score model: the step calls it as s(x, σ)
        self.chain_energy = self.model if self.scores else ClassifierEnergy(self.model, cfg.model.temperature)  # sampling: the bare module
        self.energy = self.chain_energy  # the loss: through DDP when distributed
        if self.world.active:
            uses_chains = cfg.train.objective in ("jem", "ebm") and cfg.train.chain_init == "buffer"
            distributed.check_world(self.world, d.batch_size, cfg.buffer.size if uses_chains else None,
                                    self.data.num_classes if cfg.buffer.conditional else None)
            ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            self.energy = ddp if self.scores else ClassifierEnergy(ddp, cfg.model.temperature)
        self.opt = build_optimizer(self.model.parameters(), cfg.optim)
        x, y = self.data.x_train, self.data.y_train
        self.unlabeled = None  # semi-supervised: all images feed log p(x), only a labelled subset feeds CE
        if d.labels_per_class > 0:
            idx = labelled_subset(y, d.labels_per_class, self.data.num_classes, d.split_seed)
            if cfg.train.objective != "ce":
                self.unlabeled = BatchStream(x, y, d.batch_size, seed=cfg.train.seed + 1, input_noise=d.input_noise)
            x, y = x[idx], y[idx]
        self.stream = BatchStream(x, y, min(d.batch_size, len(x)), seed=cfg.train.seed, input_noise=d.input_noise)
        if self.world.active:  # the same global stream on every rank; each takes its rows
            self.stream = RankSlice(self.stream, self.world)
            self.unlabeled = RankSlice(self.unlabeled, self.world) if self.unlabeled is not None else None
        self.sample_gen = make_generator(self.device, cfg.train.seed + 1 + self.world.rank)  # sampler and buffer randomness
        self.guard = GuardState()
        uses_buffer = cfg.train.objective in ("jem", "ebm") and cfg.train.chain_init == "buffer"
        # where fresh and re-initialized chains start; class Gaussians are fitted once, here
        self.init = build_init(cfg.buffer.init, self.data.x_train, self.data.y_train, self.data.num_classes) if uses_buffer else None
        self.buffer = self.new_buffer() if uses_buffer else None
        self.record = {**checkpoint_record(cfg, self.data, self.model), "world_size": self.world.size}
        self.step, self.test_acc, self.test_loss = 0, float("nan"), None

    def new_buffer(self) -> ReplayBuffer:
        b = self.cfg.buffer
        buffer = ReplayBuffer(b.size // self.world.size, self.data.shape, reinit=b.reinit, init=self.init, device=self.device,
                              num_classes=self.data.num_classes if b.conditional else None, generator=self.sample_gen)
        if self.cfg.train.channels_last:
            buffer.x = buffer.x.contiguous(memory_format=torch.channels_last)
        return buffer

    def step_fn(self) -> Callable[..., LossOutput]:
        fn = STEPS[self.cfg.train.objective]
        if self.cfg.train.objective == "ce":
            return fn
        if self.scores:  # noise, σ's and projections from the sampler generator (saved with every checkpoint)
            return functools.partial(fn, score=self.cfg.score, generator=self.sample_gen)
        sampler = make_sampler(self.cfg.sampler, self.guard.extra_sgld_steps)
        if self.world.active:  # chains on the bare module: DDP's hooks never see the input-gradient passes
            sampler = functools.partial(_on_energy, sampler, self.chain_energy)
        return lambda energy, x, y: fn(energy, x, y, sampler=sampler, buffer=self.buffer, train=self.cfg.train,
                                       generator=self.sample_gen,
                                       x_unlabeled=next(self.unlabeled)[0] if self.unlabeled is not None else None)

    def state(self) -> dict:
        return {"step": self.step, "optimizer": self.opt.state_dict(), "stream": self.stream.state_dict(),
                "unlabeled": self.unlabeled.state_dict() if self.unlabeled is not None else None,
                "sample_gen": self.sample_gen.get_state(), "rng": rng_state(), "guard": self.guard.state_dict(),
                "test_acc": self.test_acc}

    def save(self) -> Path:
        record = {**self.record, "test_acc": None if self.test_acc != self.test_acc else self.test_acc}
        directory, buffer, state = self.run_dir / "checkpoints", self.buffer.x if self.buffer is not None else None, self.state()
        if not self.world.active:
            path = save_checkpoint(directory, self.step, self.model, record, buffer, state)
            prune_checkpoints(directory, self.cfg.train.keep_last)
            return path
        # every rank writes its shard, then rank 0 the weights, the shared state and the record (listing all files)
        try:
            shards = save_shard(directory, self.step, self.world.rank, buffer, {k: state.pop(k) for k in RANK_STATE})
        except OSError as err:
            shards = err
        gathered = distributed.gather(shards, self.world)
        failed = [e for e in gathered if isinstance(e, OSError)]
        if failed:
            raise failed[0]
        files = {name: digest for part in gathered for name, digest in part.items()}

        def write_record() -> Path:
            path = save_checkpoint(directory, self.step, self.model, record, None, state, shards=files)
            prune_checkpoints(directory, self.cfg.train.keep_last)
            return path
        return distributed.on_main(write_record, self.world)

    def restore(self, record_path: Path, restore_guard: bool = True) -> None:
        """Load weights, buffer and training state of a verified checkpoint (weights_only, no code runs)."""
        from safetensors.torch import load_file

        stem = record_path.name[: -len(".json")]
        saved_world = int(read_record(record_path, verify=False).get("world_size", 1))
        if saved_world != self.world.size:
            raise ValueError(f"{record_path} was written by {saved_world} process(es) and this run has {self.world.size}: "
                             f"resume with the same number (torchrun --nproc_per_node={saved_world}); replay-buffer "
                             "shards and per-rank generator states are not re-sharded")
        rank = self.world.rank if self.world.active else None
        self.model.load_state_dict(load_file(str(record_path.with_name(f"{stem}.safetensors")), device=str(self.device)))
        state = load_training_state(record_path, rank=rank)  # on CPU; the optimizer moves its state to the parameters' device
        self.opt.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["stream"])
        if self.unlabeled is not None:
            self.unlabeled.load_state_dict(state["unlabeled"])
        self.sample_gen.set_state(state["sample_gen"])
        set_rng_state(state["rng"])
        if restore_guard:
            self.guard.load_state_dict(state["guard"])
        if self.buffer is not None:
            self.buffer.x = load_file(str(buffer_path(record_path, rank)), device=str(self.device))["x"]
        self.step, self.test_acc = int(state["step"]), float(state["test_acc"])

    def test_accuracy(self) -> float:
        """Accuracy on the test set; under torchrun each rank predicts every W-th example and counts are summed."""
        x, y = self.data.x_test, self.data.y_test
        if not self.world.active:
            return (predict_logits(self.model, x).argmax(1) == y).float().mean().item()
        r, w = self.world.rank, self.world.size
        correct = (predict_logits(self.model, x[r::w]).argmax(1) == y[r::w]).sum().item()
        correct, n = distributed.total([correct, len(y[r::w])], self.world)
        return correct / n

    def held_out_loss(self) -> float:
        """Score models: the training objective on held-out data with fixed noise (lower is better)."""
        return held_out_score_loss(self.model, self.data.x_test, self.cfg.train.objective, self.cfg.score)

    def save_score_samples(self, path: Path) -> None:
        """Annealed-Langevin samples of a score model (same seed every time): a grid, or points over the test data."""
        n = 64 if self.model.input_shape != (2,) else 1000
        x = draw_score_samples(self.model, self.cfg, n, generator=make_generator(self.device, self.cfg.train.seed + 2),
                         device=self.device)
        save_samples(x, path, reference=self.data.x_test if x.dim() == 2 else None)

    def event(self, message: str) -> None:
        if not self.world.main:
            return
        log.warning(message)
        with open(self.run_dir / "events.log", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} step {self.step}: {message}\n")


RANK_STATE = ("stream", "unlabeled", "sample_gen", "rng")  # what each rank saves for itself (step_N.state.rankR.pt)


def _on_energy(sampler: Callable, energy: ClassifierEnergy, _energy, x, **kwargs):
    """``sampler`` run on ``energy`` whatever energy the step passes (the bare module under DDP)."""
    return sampler(energy, x, **kwargs)


# ---------------------------------------------------------------- run directory

def _config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            keys += _config_diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            keys.append(prefix + k)
    return keys


def prepare_run_dir(cfg: Config, run_dir: Path, overwrite: bool, resume: bool) -> bool:
    """Decide between a fresh start and a resume (True); refuse a directory holding another run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"--out {run_dir} is a file, not a directory")
    has_run = bool(list_checkpoints(run_dir / "checkpoints"))
    if has_run and not overwrite:
        saved = run_dir / "config.yaml"
        diff = _config_diff(load_config(saved).to_dict(), cfg.to_dict()) if saved.is_file() else ["config.yaml missing"]
        if diff and not resume:
            raise FileExistsError(
                f"{run_dir} holds another run (its config differs at {', '.join(diff[:6])}); pass --overwrite to "
                "replace it, --resume to continue it with this config, or choose another --out")
        return True
    if overwrite:
        for sub in ("checkpoints", "samples"):
            for p in (run_dir / sub).glob("*") if (run_dir / sub).is_dir() else []:
                p.unlink()
        for name in ("metrics.csv", "events.log"):
            (run_dir / name).unlink(missing_ok=True)
        for p in run_dir.glob("events.out.tfevents.*"):  # TensorBoard
            p.unlink()
    return False


def _open_log(run_dir: Path, resumed_step: int | None):
    """metrics.csv for appending; on resume, rows after the resumed step are dropped first."""
    path = run_dir / "metrics.csv"
    rows = []
    if resumed_step is not None and path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resumed_step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, LOG_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    f = open(path, "a", newline="")
    return f, csv.DictWriter(f, LOG_COLUMNS)


class _StopSignals:
    """Turn SIGINT/SIGTERM into a flag checked between steps (main thread only); restore handlers on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


# ---------------------------------------------------------------- the loop

def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train the model described by ``cfg`` into ``run_dir`` (resuming if it holds this run).

    Started by ``torchrun --nproc_per_node=N``, each of the N processes calls this; they join one
    process group (see ``distributed.py``) and leave it at the end.
    """
    cfg = validate(cfg)
    owned = not torch.distributed.is_available() or not torch.distributed.is_initialized()
    world = distributed.init(distributed.device_for(cfg.train.device))
    try:
        return _train(cfg, Path(run_dir), world, overwrite=overwrite, resume=resume, progress=progress, on_step=on_step)
    finally:
        if owned and world.active:
            distributed.shutdown()


def _train(cfg: Config, run_dir: Path, world: World, *, overwrite: bool, resume: bool, progress: bool,
           on_step: Callable[[int, dict], None] | None) -> TrainResult:
    from tqdm.auto import tqdm

    resuming = distributed.on_main(lambda: prepare_run_dir(cfg, run_dir, overwrite, resume), world)
    start = time.perf_counter()
    run = Run(cfg, run_dir, world)
    if resuming:
        found = distributed.on_main(lambda: latest_valid(run_dir / "checkpoints"), world)
        if found is None:
            raise CorruptCheckpoint(f"{run_dir}: no checkpoint can be resumed (all are corrupt); use --overwrite to start over")
        run.restore(found[0])  # before anything is written: a refused resume changes no file
        run.event(f"resumed from {found[0].name}")
    else:
        run.save()  # step 0: the first point to roll back to
    if world.main:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        logfile, writer = _open_log(run_dir, run.step if resuming else None)
    else:  # only rank 0 writes metrics.csv
        logfile = open(os.devnull, "w")
        writer = csv.DictWriter(logfile, LOG_COLUMNS)
    tb = TensorBoard(run_dir, purge_step=run.step + 1 if resuming else None) if world.main and cfg.train.tensorboard else None
    total, steps_per_epoch = cfg.train.steps, run.stream.per_epoch
    step_fn, sums, count = run.step_fn(), {}, 0
    memory_mark = (run.step, host_memory()["minor_faults"])  # faults_per_step: since the last logged row
    bar = tqdm(total=total, initial=run.step, desc=f"train {cfg.preset}", disable=not progress or not world.main,
               dynamic_ncols=True)
    try:
        with _StopSignals() as stop:
            while run.step < total:
                step = run.step + 1
                lr = lr_at(step, cfg.optim, total) * run.guard.lr_scale
                if cfg.guard.inject_lr_mult_at == step and not run.guard.lr_fired:
                    lr, run.guard.lr_fired = lr * cfg.guard.inject_lr_mult, True
                for group in run.opt.param_groups:
                    group["lr"] = lr
                run.model.train()
                x, y = next(run.stream)
                try:
                    out = step_fn(run.energy, x, y)
                    if cfg.guard.inject_nan_at == step and not run.guard.nan_fired:
                        run.guard.nan_fired = True
                        nan = float("nan")
                        out = LossOutput(out.loss * nan, {**out.stats, "e_data": out.stats.get("e_data", out.loss) * nan})
                    reason = check_step(cfg.guard, out) if cfg.guard.enabled else None
                except FloatingPointError as err:  # the sampler's chains blew up
                    reason = str(err)
                if world.active and (ranks := distributed.ranks_with(reason is not None, world)) and reason is None:
                    reason = f"divergence on rank {', '.join(map(str, ranks))}"  # every rank rolls back together
                if reason is None:
                    run.opt.zero_grad(set_to_none=True)
                    out.loss.backward()
                    if cfg.optim.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.grad_clip)
                    run.opt.step()
                    run.step = step
                    for k, v in {"loss": out.loss.detach(), **out.stats}.items():
                        sums[k] = sums.get(k, 0) + v
                    count += 1
                    row = {}
                    if (step % cfg.train.eval_every == 0 or step == total) and run.scores:
                        run.test_loss = run.held_out_loss()
                        row["test_loss"] = round(run.test_loss, 6)
                    elif step % cfg.train.eval_every == 0 or step == total:
                        run.test_acc = run.test_accuracy()
                        row["test_acc"] = round(run.test_acc, 5)
                    if step % cfg.train.log_every == 0 or step == total:
                        means = {k: v / count for k, v in sums.items()}
                        if run.buffer is not None:
                            means.update(buffer_stats(run.buffer.x))
                        # averaged over ranks; one host sync per interval
                        means = {k: v.item() for k, v in distributed.mean(means, world).items()}
                        sums, count = {}, 0
                        row.update({k: round(v, 6) for k, v in means.items()})
                        columns, memory_mark = _memory_columns(memory_mark, step)  # this process (rank 0 under torchrun)
                        row.update(columns)
                        if cfg.guard.enabled and "acc" in means:
                            reason = check_accuracy(cfg.guard, run.guard, means["acc"])
                        bar.set_postfix({k: f"{means[k]:.3f}" for k in ("loss", "acc") if k in means}
                                        | {"test_acc": f"{run.test_acc:.3f}"})
                    if row:
                        row.update(step=step, epoch=round(step / steps_per_epoch, 3), lr=lr,
                                   seconds=round(time.perf_counter() - start, 2))
                        writer.writerow(row)
                        logfile.flush()
                        if tb is not None:
                            tb.scalars(row, step)
                    if run.buffer is not None and world.main and (step % cfg.train.sample_every == 0 or step == total):
                        save_grid(run.buffer.x[:64], run_dir / "samples" / f"step_{step:08d}.png", nrow=8)
                        if tb is not None:
                            tb.grid(run.buffer.x[:64], step)
                    if run.scores and world.main and (step % cfg.train.sample_every == 0 or step == total):
                        run.save_score_samples(run_dir / "samples" / f"step_{step:08d}.png")
                    if reason is None and ((cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0)
                                           or step == total):
                        run.save()
                    bar.update(1)
                    if on_step is not None:
                        on_step(step, out.stats)
                if reason is not None:
                    step_fn, sums, count = _recover(run, reason), {}, 0
                    memory_mark = (run.step, host_memory()["minor_faults"])  # steps count again from the rollback
                    bar.n = run.step
                    bar.refresh()
                if distributed.ranks_with(stop.signum is not None, world):  # every rank stops at the same step
                    signum = stop.signum or signal.SIGTERM
                    path = run.save()
                    run.event(f"stopped by {signal.Signals(signum).name}; checkpoint {path.name}")
                    raise TrainingInterrupted(signum, run.step, path)
    finally:
        bar.close()
        logfile.close()
        if tb is not None:
            tb.close()
    final = distributed.on_main(lambda: latest_valid(run_dir / "checkpoints"), world)
    return TrainResult(run_dir, final[0].with_suffix(".safetensors"), run.test_acc, time.perf_counter() - start,
                       run.test_loss)


def _memory_columns(mark: tuple[int, float], step: int) -> tuple[dict, tuple[int, float]]:
    """metrics.csv's host-memory columns: RSS now and at the process's peak (MiB), and minor page faults
    per training step since ``mark`` = (step, faults) — near 0 once steady memory has warmed up; and the
    mark for the next row."""
    m = host_memory()
    cols = {"peak_rss_mb": round(m["peak_rss_mb"], 1),
            "faults_per_step": round((m["minor_faults"] - mark[1]) / max(step - mark[0], 1), 1)}
    if m["rss_mb"] is not None:
        cols["rss_mb"] = round(m["rss_mb"], 1)
    return cols, (step, m["minor_faults"])


def _recover(run: Run, reason: str) -> Callable[..., LossOutput]:
    """Roll back to the last good checkpoint and change course; raise after max_recoveries."""
    g, cfg = run.guard, run.cfg.guard
    if g.recoveries >= cfg.max_recoveries:
        raise DivergenceError(f"training diverged at step {run.step + 1} ({reason}) and {g.recoveries} recoveries "
                              f"did not help; stopping. The last good checkpoint is in {run.run_dir / 'checkpoints'}")
    found = distributed.on_main(lambda: latest_valid(run.run_dir / "checkpoints"), run.world)
    if found is None:
        raise DivergenceError(f"training diverged at step {run.step + 1} ({reason}) and no checkpoint is left to roll back to")
    failed_at = run.step + 1
    run.restore(found[0], restore_guard=False)
    g.recoveries += 1
    g.best_acc = 0.0  # accuracy collapse is judged afresh from the rolled-back state
    g.lr_scale *= cfg.lr_factor
    g.extra_sgld_steps += cfg.extra_sgld_steps
    changes = [f"lr x{g.lr_scale:g}"]
    if cfg.reset_buffer and run.buffer is not None:
        run.buffer = run.new_buffer()
        changes.append("buffer re-initialized")
    if g.extra_sgld_steps:
        changes.append(f"SGLD steps +{g.extra_sgld_steps}")
    run.event(f"divergence at step {failed_at}: {reason}. Recovery {g.recoveries}/{cfg.max_recoveries}: rolled back "
              f"to step {run.step}, {', '.join(changes)}")
    return run.step_fn()
