"""The training loop: data → model → (sampler + buffer) → objective → optimizer, with logging,
checkpoints, exact resume, a divergence guard, and clean stops on SIGINT/SIGTERM.

``train(cfg, run_dir)`` writes into ``run_dir``: ``config.yaml`` (resolved config),
``metrics.csv`` (one row every ``train.log_every`` steps, see ``metrics_log.py``), ``events.log``
(recoveries, resumes, interruptions), ``samples/step_N.png`` (replay-buffer grids) and
``checkpoints/`` (see ``jemkit/checkpoint.py``). Started again with the same config, it resumes
from the last valid checkpoint and ends with the same weights as an uninterrupted run (bitwise on CPU).
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..checkpoint import CorruptCheckpoint, latest_valid
from ..config import Config, TrainConfig, save_config, validate
from ..images import save_grid
from ..objectives import LossOutput
from ..utils import train_mode
from . import distributed
from .callbacks import Callback, Callbacks, OnStepEnd
from .distributed import World
from .guard import check_accuracy, check_step
from .metrics_log import MetricsLog
from .recovery import recover
from .run import Run
from .rundir import prepare_run_dir


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


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train the model described by ``cfg`` into ``run_dir`` (resuming if it holds this run).

    ``callbacks`` hook into every step (see ``callbacks.py``); ``on_step(step, stats)`` is the
    short form of an ``on_step_end`` hook. Started by ``torchrun --nproc_per_node=N``, each of the
    N processes calls this; they join one process group (see ``distributed.py``) and leave it at the end.
    """
    cfg = validate(cfg)
    hooks = Callbacks([*callbacks, *([OnStepEnd(on_step)] if on_step is not None else [])])
    owned = not torch.distributed.is_available() or not torch.distributed.is_initialized()
    world = distributed.init(distributed.device_for(cfg.train.device))
    try:
        return _train(cfg, Path(run_dir), world, overwrite=overwrite, resume=resume, progress=progress, hooks=hooks)
    finally:
        if owned and world.active:
            distributed.shutdown()


def _train(cfg: Config, run_dir: Path, world: World, *, overwrite: bool, resume: bool, progress: bool,
           hooks: Callback) -> TrainResult:
    from tqdm.auto import tqdm

    resuming = distributed.on_main(lambda: prepare_run_dir(cfg, run_dir, overwrite, resume), world)
    start = time.perf_counter()
    run = Run(cfg, run_dir, world)
    _resume_or_start(run, resuming)  # a refused resume changes no file
    if world.main:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    log = MetricsLog(run_dir, world, run.step, resuming, cfg.train.tensorboard, start)
    bar = tqdm(total=cfg.train.steps, initial=run.step, desc=f"train {cfg.preset}", dynamic_ncols=True,
               disable=not progress or not world.main)
    try:
        with _StopSignals() as stop:
            _loop(run, log, hooks, stop, bar)
    finally:
        bar.close()
        log.close()
    final = distributed.on_main(lambda: latest_valid(run_dir / "checkpoints"), world)
    return TrainResult(run_dir, final[0].with_suffix(".safetensors"), run.state.test_acc, time.perf_counter() - start,
                       run.test_loss)


def _resume_or_start(run: Run, resuming: bool) -> None:
    """Restore the last valid checkpoint, or save step 0 (the first point to roll back to: the pretrained
    weights of ``model.init`` when it names them)."""
    if not resuming:
        run.start_from_init()
        run.save()
        return
    found = distributed.on_main(lambda: latest_valid(run.run_dir / "checkpoints"), run.world)
    if found is None:
        raise CorruptCheckpoint(f"{run.run_dir}: no checkpoint can be resumed (all are corrupt); use --overwrite to start over")
    run.restore(found[0])
    run.event(f"resumed from {found[0].name}")


def _loop(run: Run, log: MetricsLog, hooks: Callback, stop: _StopSignals, bar) -> None:
    """step → guard → backward → optimizer → report and checkpoint → callbacks, until ``train.steps``;
    a diverged step rolls the run back to its last good checkpoint."""
    step_fn, cfg = run.step_fn(), run.cfg.train
    while run.step < cfg.steps:
        step = run.step + 1
        hooks.on_step_start(step, run.opt)
        lr = run.opt.param_groups[0]["lr"]
        out, reason = _guarded_step(run, step_fn, step, hooks)
        if reason is None:
            _optimize(run, out.loss)
            reason = _report(run, log, out, lr, bar)
            if reason is None and _due(cfg.checkpoint_every, step, cfg):
                run.save()
            bar.update(1)
            hooks.on_step_end(step, out.stats)
        if reason is not None:
            step_fn = recover(run, reason)
            log.restart(run.step)  # steps count again from the rollback
            bar.n = run.step
            bar.refresh()
        if distributed.ranks_with(stop.signum is not None, run.world):  # every rank stops at the same step
            _interrupt(run, stop.signum or signal.SIGTERM)


def _guarded_step(run: Run, step_fn: Callable[..., LossOutput], step: int,
                  hooks: Callback) -> tuple[LossOutput | None, str | None]:
    """The step's loss on the next batch and, if it diverged on any rank, why (every rank rolls back together)."""
    train_mode(run.model, run.cfg.train.norm_eval)
    x, y = next(run.stream)
    out, reason = None, None
    try:
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.cfg.train.bf16):  # train.bf16
            out = step_fn(run.energy, x, y)
        out = hooks.on_loss(step, out)
        reason = check_step(run.cfg.guard, out) if run.cfg.guard.enabled else None
    except FloatingPointError as err:  # the sampler's chains blew up
        reason = str(err)
    if run.world.active and (ranks := distributed.ranks_with(reason is not None, run.world)) and reason is None:
        reason = f"divergence on rank {', '.join(map(str, ranks))}"
    return out, reason


def _optimize(run: Run, loss: torch.Tensor) -> None:
    """Backward, clip, optimizer step, the next step's lr, the weight average; one more finished step."""
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if run.cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.optim.grad_clip)
    run.opt.step()
    run.state.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.state.step += 1


def _due(every: int, step: int, cfg: TrainConfig) -> bool:
    """Whether something done every ``every`` steps (0: never) is due at ``step``; always at the last step."""
    return (every > 0 and step % every == 0) or step == cfg.steps


def _report(run: Run, log: MetricsLog, out: LossOutput, lr: float, bar) -> str | None:
    """Test metrics, the metrics.csv row and sample grids of the step just finished; the guard's reason
    if the logged training accuracy collapsed."""
    step, cfg, reason = run.step, run.cfg.train, None
    log.add({"loss": out.loss.detach(), **out.stats})
    row = _evaluate(run) if _due(cfg.eval_every, step, cfg) else {}
    if _due(cfg.log_every, step, cfg):
        means = log.means(run.buffer.x if run.buffer is not None else None)
        row.update({k: round(v, 6) for k, v in means.items()}, **log.memory(step))
        if run.cfg.guard.enabled and "acc" in means:
            reason = check_accuracy(run.cfg.guard, run.state.guard, means["acc"])
        bar.set_postfix({k: f"{means[k]:.3f}" for k in ("loss", "acc") if k in means}
                        | {"test_acc": f"{run.state.test_acc:.3f}"})
    if row:
        log.write(row, step, step / run.stream.per_epoch, lr)
    if run.world.main and _due(cfg.sample_every, step, cfg):
        _save_samples(run, log)
    return reason


def _evaluate(run: Run) -> dict:
    """The test-set columns of this row: accuracy, NLL and ECE (and, with ``train.eval_samples``, the class
    agreement of class-conditional fresh chains), or a score model's held-out loss."""
    if run.is_score_model:
        run.test_loss = run.held_out_loss()
        return {"test_loss": round(run.test_loss, 6)}
    metrics = run.test_metrics()
    run.state.test_acc = metrics["test_acc"]
    row = {k: round(v, 5) for k, v in metrics.items()}
    if run.cfg.train.eval_samples > 0:
        row["test_agreement"] = round(run.sample_agreement(), 5)
    return row


def _save_samples(run: Run, log: MetricsLog) -> None:
    """samples/step_N.png: the replay buffer's first 64 chains (also to TensorBoard), or a score model's samples."""
    path = run.run_dir / "samples" / f"step_{run.step:08d}.png"
    if run.buffer is not None:
        save_grid(run.buffer.x[:64], path, nrow=8)
        log.grid(run.buffer.x[:64], run.step)
    if run.is_score_model:
        run.save_score_samples(path)


def _interrupt(run: Run, signum: int) -> None:
    """Save the last finished step and stop with TrainingInterrupted."""
    path = run.save()
    run.event(f"stopped by {signal.Signals(signum).name}; checkpoint {path.name}")
    raise TrainingInterrupted(signum, run.step, path)
