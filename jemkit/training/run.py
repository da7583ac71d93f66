"""Run: everything a training run holds — data, model (DDP-wrapped under torchrun), optimizer,
weight average, replay buffer, TrainState — and how it is saved to and restored from checkpoints."""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor
from torchmetrics.functional.classification import multiclass_calibration_error

from ..checkpoint import buffer_path, load_training_state, prune_checkpoints, read_record, save_checkpoint, save_shard
from ..config import SCORE_OBJECTIVES, Config
from ..data import BatchStream, dataset_from_config, labelled_subset, load_ood_set
from ..energy import ClassifierEnergy
from ..images import save_samples
from ..model import predict_logits
from ..objectives import LossOutput, discriminative, margins_from_energies, pgd_linf
from ..sampling import ReplayBuffer, RidgedGaussian, draw_score_samples, fresh_chains, make_sampler, training_init
from ..utils import make_generator, resolve_device, seed_everything
from . import distributed
from .build import build_ema, build_model, build_optimizer, checkpoint_record, load_init
from .distributed import RankSlice, World
from .state import RANK_STATE, TrainState
from .steps import STEPS, draws_chains, held_out_score_loss

log = logging.getLogger("jemkit")


class Run:
    """Everything a training run holds, and how it is saved and restored.

    Under torchrun (``world.active``) the model is wrapped in DDP for the loss (``energy``), chains
    run on the bare module (``chain_energy``), each rank takes its slice of every global batch and
    keeps its own buffer shard and sampler generator (seeded ``seed + 1 + rank``). With
    ``train.ema > 0``, ``ema`` averages the weights; test metrics are measured on it.
    """

    def __init__(self, cfg: Config, run_dir: Path, world: World | None = None):
        self.cfg, self.run_dir, self.world = cfg, run_dir, world or World()
        self.device = self.world.device if self.world.active else resolve_device(cfg.train.device)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True)
        seed_everything(cfg.train.seed + self.world.rank)  # initialization (rank 0's is broadcast by DDP) and dropout
        d = cfg.data
        self.data = dataset_from_config(d).to(self.device)
        self.outliers = (load_ood_set(d.outliers, like=self.data, name=f"data.outliers={d.outliers}").to(self.device)
                         if d.outliers else None)  # energy_oe's auxiliary outlier images (N, C, H, W)
        self.model = build_model(cfg, self.data).to(self.device)
        self.model.check_finite = False  # data are validated once at load; the guard watches the rest
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.data.x_train = self.data.x_train.contiguous(memory_format=torch.channels_last)
        self.is_score_model = cfg.train.objective in SCORE_OBJECTIVES  # the step calls it as s(x, σ)
        self.uses_buffer = draws_chains(cfg) and cfg.train.chain_init == "buffer"
        self.ema = build_ema(self.model, cfg.train.ema)  # before DDP wraps the model
        self._wrap_energies()
        opt = build_optimizer(self.model.parameters(), cfg.optim)
        stream, unlabeled = self._streams()
        sample_gen = make_generator(self.device, cfg.train.seed + 1 + self.world.rank)  # sampler and buffer randomness
        self.state = TrainState(opt, cfg.optim, cfg.train.steps, stream, unlabeled, sample_gen, self.ema)
        # where fresh and re-initialized chains start; Gaussians are fitted once, here
        self.init = (training_init(cfg, self.data.x_train, self.data.y_train, self.data.num_classes)
                     if self.uses_buffer else None)
        self.buffer = self.new_buffer() if self.uses_buffer else None
        # a tilted model's base: the training images' Gaussian with its validation-chosen ridge (labels unused)
        self.base = RidgedGaussian.fit(self.data.x_train) if cfg.train.objective == "tilt" else None
        self.record = {**checkpoint_record(cfg, self.data, self.model), "world_size": self.world.size}
        self.test_loss = None

    def _wrap_energies(self) -> None:
        """``chain_energy`` on the bare module (sampling); ``energy`` for the loss, through DDP when distributed."""
        cfg = self.cfg
        self.chain_energy = self.model if self.is_score_model else ClassifierEnergy(self.model, cfg.model.temperature)
        self.energy = self.chain_energy
        if not self.world.active:
            return
        distributed.check_world(self.world, cfg.data.batch_size, cfg.buffer.size if self.uses_buffer else None,
                                self.data.num_classes if cfg.buffer.conditional else None, cfg.train.sample_batch)
        ddp = torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.energy = ddp if self.is_score_model else ClassifierEnergy(ddp, cfg.model.temperature)

    def _streams(self) -> tuple:
        """The labelled batch stream, and (semi-supervised) the stream of all images that feeds log p(x)."""
        d, x, y = self.cfg.data, self.data.x_train, self.data.y_train
        unlabeled = None
        if d.labels_per_class > 0:
            idx = labelled_subset(y, d.labels_per_class, self.data.num_classes, d.split_seed)
            if self.cfg.train.objective != "ce":
                unlabeled = BatchStream(x, y, d.batch_size, seed=self.cfg.train.seed + 1, input_noise=d.input_noise,
                                        augment=d.augment, shift=d.shift)
            x, y = x[idx], y[idx]
        stream = BatchStream(x, y, min(d.batch_size, len(x)), seed=self.cfg.train.seed, input_noise=d.input_noise,
                             augment=d.augment, shift=d.shift)
        if self.world.active:  # the same global stream on every rank; each takes its rows
            stream = RankSlice(stream, self.world)
            unlabeled = RankSlice(unlabeled, self.world) if unlabeled is not None else None
        return stream, unlabeled

    @property
    def opt(self) -> torch.optim.Optimizer:
        return self.state.optimizer

    @property
    def stream(self):
        return self.state.stream

    @property
    def step(self) -> int:
        """Training steps finished."""
        return self.state.step

    @property
    def eval_model(self) -> torch.nn.Module:
        """What test metrics, score-sample grids and ``jemkit.load`` use: the weight average when on."""
        return self.ema.module if self.ema is not None else self.model

    def new_buffer(self) -> ReplayBuffer:
        b = self.cfg.buffer
        buffer = ReplayBuffer(b.size // self.world.size, self.data.shape, reinit=b.reinit, init=self.init, device=self.device,
                              num_classes=self.data.num_classes if b.conditional else None,
                              generator=self.state.sample_gen)
        if self.cfg.train.channels_last:
            buffer.x = buffer.x.contiguous(memory_format=torch.channels_last)
        return buffer

    def start_from_init(self) -> None:
        """A fresh run's step 0: ``model.init``'s pretrained weights in the model and its weight average, then the
        energy-OE margins measured on them (``oe.margins=auto``). A resumed run restores both from its checkpoint
        and never reads the init."""
        if self.cfg.model.init:
            load_init(self.model, self.cfg)
            if self.ema is not None:
                self.ema.module.load_state_dict(self.model.state_dict())
        if self.outliers is not None and self.cfg.oe.margins == "auto":
            self.state.oe_margins = self.measure_margins()

    @torch.no_grad()
    def measure_margins(self, n: int = 5000) -> list[float]:
        """``margins_from_energies`` of the model as it is now (eval mode), on the first ``n`` training images
        (without input noise) and the first ``n`` outliers; logged in events.log."""
        energy = lambda x: self.chain_energy.energy_from_logits(predict_logits(self.model, x).float())
        e_in, e_out = energy(self.data.x_train[:n]), energy(self.outliers[:n])
        m_in, m_out = margins_from_energies(e_in, e_out, self.cfg.oe.margin_gap)
        self.event(f"oe.margins=auto: m_in={m_in:.4f}, m_out={m_out:.4f} (median energy: training images "
                   f"{e_in.median().item():.4f}, outliers {e_out.median().item():.4f}; least gap {self.cfg.oe.margin_gap:g})")
        return [m_in, m_out]

    def step_fn(self) -> Callable[..., LossOutput]:
        """This run's training step ``fn(energy, x, y) -> LossOutput`` (SGLD steps as the guard has them now)."""
        step = self.loss_step()
        adv = self.cfg.adv
        if adv.eps > 0:  # adversarial training: the batch's PGD images, from the bare module like the chains
            attack = lambda x, y: pgd_linf(self.chain_energy, x, y, eps=adv.eps, steps=adv.steps, step_size=adv.step_size,
                                           generator=self.state.sample_gen)
            return functools.partial(_adversarial, step, attack, adv.clean_weight)
        return step

    def loss_step(self) -> Callable[..., LossOutput]:
        """``step_fn`` on the clean batch: ``fn(energy, x, y, **adversarial) -> LossOutput``."""
        fn, cfg, s = STEPS[self.cfg.train.objective], self.cfg, self.state
        if cfg.train.objective == "ce":
            return fn
        if cfg.train.objective == "energy_oe" or self.outliers is not None:  # margins, and outliers (energy_oe
            # without them: the buffer's chains stand in; jem with them: JEM plus the outlier term)
            oe = cfg.oe if s.oe_margins is None else dataclasses.replace(cfg.oe, m_in=s.oe_margins[0], m_out=s.oe_margins[1])
            fn = functools.partial(fn, oe=oe, outliers=self.outliers)
        if self.is_score_model:  # noise, σ's and projections from the sampler generator (saved with every checkpoint)
            return functools.partial(fn, score=cfg.score, generator=s.sample_gen)
        sampler, train = make_sampler(cfg.sampler, s.guard.extra_sgld_steps), cfg.train
        if self.world.active:  # chains on the bare module: DDP's hooks never see the input-gradient passes
            sampler = functools.partial(_on_energy, sampler, self.chain_energy)
            train = dataclasses.replace(train, sample_batch=train.sample_batch // self.world.size)  # chains per rank
        if self.base is not None:
            fn = functools.partial(fn, base=self.base)
        step = lambda energy, x, y, **adversarial: fn(energy, x, y, sampler=sampler, buffer=self.buffer, train=train,
                                                      generator=s.sample_gen, **adversarial,
                                                      x_unlabeled=next(s.unlabeled)[0] if s.unlabeled is not None else None)
        if train.objective in ("jem", "tilt") and (train.px_start or train.px_every > 1):
            return functools.partial(_px_scheduled, step, s, train)
        return step

    def save(self) -> Path:
        """A checkpoint of this step (every rank writes its own files under torchrun); the record's path."""
        test_acc = self.state.test_acc
        record = {**self.record, "test_acc": None if test_acc != test_acc else test_acc}
        directory, state = self.run_dir / "checkpoints", self.state.state_dict()
        buffer = self.buffer.x if self.buffer is not None else None
        ema = self.ema.module if self.ema is not None else None
        if not self.world.active:
            path = save_checkpoint(directory, self.step, self.model, record, buffer, state, ema=ema)
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
            path = save_checkpoint(directory, self.step, self.model, record, None, state, shards=files, ema=ema)
            prune_checkpoints(directory, self.cfg.train.keep_last)
            return path
        return distributed.on_main(write_record, self.world)

    def restore(self, record_path: Path, restore_guard: bool = True) -> None:
        """Load weights, weight average, buffer and training state of a verified checkpoint (weights_only, no
        code runs). A checkpoint without a weight average starts one from its weights."""
        from safetensors.torch import load_file

        saved_world = int(read_record(record_path, verify=False).get("world_size", 1))
        if saved_world != self.world.size:
            raise ValueError(f"{record_path} was written by {saved_world} process(es) and this run has {self.world.size}: "
                             f"resume with the same number (torchrun --nproc_per_node={saved_world}); replay-buffer "
                             "shards and per-rank generator states are not re-sharded")
        rank, device = self.world.rank if self.world.active else None, str(self.device)
        weights = record_path.with_suffix(".safetensors")
        self.model.load_state_dict(load_file(str(weights), device=device))
        if self.ema is not None:
            ema = weights.with_suffix(".ema.safetensors")
            self.ema.module.load_state_dict(load_file(str(ema if ema.is_file() else weights), device=device))
        # on CPU; the optimizer moves its state to the parameters' device
        self.state.load_state_dict(load_training_state(record_path, rank=rank), restore_guard)
        if self.buffer is not None:
            self.buffer.x = load_file(str(buffer_path(record_path, rank)), device=device)["x"]

    def test_metrics(self) -> dict[str, float]:
        """Accuracy, NLL and ECE (20 equal-width bins, torchmetrics; as the calibration suite) on the test set.
        Under torchrun each rank predicts every W-th example and the logits are gathered."""
        x, y, model = self.data.x_test, self.data.y_test, self.eval_model
        if self.world.active:
            r, w = self.world.rank, self.world.size
            parts = distributed.gather((predict_logits(model, x[r::w]).cpu(), y[r::w].cpu()), self.world)
            logits, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        else:
            logits = predict_logits(model, x)
        logits = logits.float()
        return {"test_acc": (logits.argmax(1) == y).float().mean().item(),
                "test_nll": torch.nn.functional.cross_entropy(logits, y).item(),
                "test_ece": multiclass_calibration_error(logits.softmax(1), y, num_classes=logits.shape[1], n_bins=20,
                                                         norm="l1").item()}

    def sample_agreement(self) -> float:
        """Share of class-conditional fresh chains, ``train.eval_samples`` per class from the training init and
        sampler (as the ``samples`` suite draws them), that the model classifies as the class they were drawn
        for. The same seed at every evaluation; the training generators are not touched."""
        k = self.data.num_classes
        if self.init is None:  # no buffer (e.g. the baseline, CD-k): fit the training init once, on first use
            self.init = training_init(self.cfg, self.data.x_train, self.data.y_train, self.data.num_classes)
        init = self.init
        y = torch.arange(k, device=self.device).repeat_interleave(self.cfg.train.eval_samples)
        energy = ClassifierEnergy(self.eval_model, self.cfg.model.temperature)
        x = fresh_chains(energy, make_sampler(self.cfg.sampler), len(y), self.data.shape, y=y, init=init,
                         generator=make_generator(self.device, self.cfg.train.seed + 3), device=self.device)
        return (predict_logits(self.eval_model, x).argmax(1) == y).float().mean().item()

    def held_out_loss(self) -> float:
        """Score models: the training objective on held-out data with fixed noise (lower is better)."""
        return held_out_score_loss(self.eval_model, self.data.x_test, self.cfg.train.objective, self.cfg.score)

    def save_score_samples(self, path: Path) -> None:
        """Annealed-Langevin samples of a score model (same seed every time): a grid, or points over the test data."""
        n = 64 if self.model.input_shape != (2,) else 1000
        x = draw_score_samples(self.eval_model, self.cfg, n, generator=make_generator(self.device, self.cfg.train.seed + 2),
                               device=self.device)
        save_samples(x, path, reference=self.data.x_test if x.dim() == 2 else None)

    def event(self, message: str) -> None:
        """A line in events.log (rank 0) and a warning: resumes, recoveries, interruptions."""
        if not self.world.main:
            return
        log.warning(message)
        self.run_dir.mkdir(parents=True, exist_ok=True)  # a fresh run's step 0 can log before its first checkpoint
        with open(self.run_dir / "events.log", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} step {self.step}: {message}\n")


def _px_scheduled(jem: Callable[..., LossOutput], state: TrainState, train, energy: ClassifierEnergy, x, y,
                  **adversarial) -> LossOutput:
    """The JEM (or tilted JEM) step where the log p(x) term is due (step ≥ ``train.px_start`` and every ``train.px_every``-th step
    from there), the cross-entropy step elsewhere. Decided by the step number alone, so a resumed run repeats it.
    ``adversarial`` (``x_adv``, ``clean_weight``) goes to either."""
    step = state.step + 1
    if step >= train.px_start and (step - train.px_start) % train.px_every == 0:
        return jem(energy, x, y, **adversarial)
    return discriminative(energy, x, y, **adversarial)


def _adversarial(step: Callable[..., LossOutput], attack: Callable[..., Tensor], clean_weight: float,
                 energy: ClassifierEnergy, x, y) -> LossOutput:
    """``step`` with the cross-entropy on the batch's adversarial images ``attack(x, y)`` (``adv.*``)."""
    return step(energy, x, y, x_adv=attack(x, y), clean_weight=clean_weight)


def _on_energy(sampler: Callable, energy: ClassifierEnergy, _energy, x, **kwargs):
    """``sampler`` run on ``energy`` whatever energy the step passes (the bare module under DDP)."""
    return sampler(energy, x, **kwargs)
