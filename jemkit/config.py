"""Typed configs: one dataclass per component, composed in ``Config``, loaded from YAML presets
(``jemkit/presets/*.yaml``, partial dicts over the defaults) and overridden by dotted keys
(``--set optim.lr=3e-4``). The resolved config is saved with every run and checkpoint.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path

import yaml

from .utils import closest


@dataclass
class DataConfig:
    name: str = "digits"  # digits | fashion-mnist | mnist | cifar10 | cifar100 | svhn | celeba | 8gaussians | rings | moons (2-D) | npz:FILE | imagefolder:DIR (your own)
    root: str | None = None  # where to look first for the files (datasets that are not embedded)
    download: bool = True  # last resort: torchvision's download, for users with a network
    batch_size: int = 64
    input_noise: float = 0.03  # JEM: train inputs get N(0, σ²) noise
    test_fraction: float = 0.2  # digits only: held-out stratified split
    labels_per_class: int = 0  # semi-supervised: keep N labels per class (0 = all); every image still feeds log p(x)
    split_seed: int = 0
    shape: str = ""  # "CxHxW" (e.g. 3x32x32): pad images symmetrically with -1 to HxW and repeat gray to C channels ("" = as loaded)
    outliers: str = ""  # train.objective=energy_oe: auxiliary outlier images, npz:FILE | imagefolder:DIR ("" = the replay buffer's SGLD samples stand in)


@dataclass
class ModelConfig:
    arch: str = "cnn"  # cnn | wrn | score_mlp (2-D toys) | score_cnn (score networks for dsm/ssm/ncsn)
    width: int = 32  # cnn
    depth: int = 28  # wrn
    widen: int = 10  # wrn
    norm: str = "none"  # none | batch | layer | instance
    dropout: float = 0.0
    activation: str = "leaky_relu"  # cnn: leaky_relu | silu | relu
    head_grid: int = 1  # cnn: pool the last feature map to g×g and flatten into the head (1 = global average pooling)
    temperature: float = 1.0  # E(x) = −T logsumexp(f/T)
    spectral_norm: bool = False  # spectral normalization on every conv and linear layer (IGEBM)
    sigma_mode: str = "scale"  # score nets: scale (s = f(x)/σ, NCSNv2) | embed (s = f(x, log σ)/σ)
    stem: str = "default"  # torchvision:/timm: ResNets: default | small (3×3 stride-1 first conv, no max-pool)
    init: str = ""  # start from pretrained weights, loaded before step 0 (never on resume): checkpoint:PATH (a jemkit checkpoint or run dir; a bare PATH means the same) | weights:PATH (the net's state_dict, .safetensors or .pt)
    normalize: list[float] = field(default_factory=list)  # the net's input convention, as `jemkit eval --normalize`: [mean, std] or C means then C stds; it sees ((x+1)/2 − mean)/std ([] = x in [-1, 1] as is)


@dataclass
class SamplerConfig:
    name: str = "sgld"  # sgld | langevin | mala
    steps: int = 20
    step_size: float = 1.0
    noise: float = 0.01  # sgld only: JEM's decoupled noise std
    grad_clip: float = 0.0  # sgld only: clip ∇ₓE per coordinate (JEM++'s proximal step); 0 = off
    clamp: bool = False  # sgld only: keep samples in [−1, 1] after every step (JEM++)
    eval_mode: bool = True  # sample with the net in eval mode (JEM); False keeps train-mode BN (JEM++)
    bf16: bool = False  # sgld/langevin: energy passes under bfloat16 autocast (chains stay float32)
    compile: bool = False  # sgld/langevin: torch.compile the energy-gradient step (eager fallback, one warning)
    cuda_graph: bool = False  # sgld/langevin on CUDA: replay one captured step per SGLD step (refused on CPU)


@dataclass
class BufferConfig:
    size: int = 10000
    reinit: float = 0.05
    init: str = "uniform"  # uniform (JEM) | class_gaussian (JEM++ informative init, fitted to the training data)
    conditional: bool = False  # one segment per class: samples drawn as p(y) p(x|y) (JEM's p(x|y)-factored variant)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | sgd
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    warmup: int = 1000  # linear warmup iterations
    decay_at: list[float] = field(default_factory=list)  # fractions of training where lr *= decay
    decay: float = 0.3
    grad_clip: float = 0.0  # clip the parameters' gradient norm to this (0 = off)


@dataclass
class TrainConfig:
    objective: str = "jem"  # jem | ebm (unconditional, labels unused) | ce (discriminative baseline) | energy_oe (energy-bounded outlier exposure, see oe.*) | dsm | ssm | ncsn (score matching, see score.*)
    chain_init: str = "buffer"  # buffer (PCD) | data (contrastive divergence CD-k, k = sampler.steps)
    steps: int = 2000
    pyx_weight: float = 1.0
    px_weight: float = 1.0
    pxy_weight: float = 0.0  # JEM's log p(x, y) term: E(x, y) − E(x', y), x' ~ p(x|y); needs buffer.conditional
    energy_l2: float = 0.0
    sample_input_noise: float = 0.0  # σ of N(0, σ²) added to chain samples in the loss (match data.input_noise; the buffer keeps clean chains)
    log_every: int = 50
    eval_every: int = 500
    sample_every: int = 500
    checkpoint_every: int = 0  # 0: only at the start and the end
    keep_last: int = 3  # checkpoints kept (plus the best by test accuracy)
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False  # torch.use_deterministic_algorithms (bitwise resume on GPU too)
    channels_last: bool = False  # NHWC memory format for the network, data and buffer (faster convolutions)
    steady_memory: bool = True  # `jemkit train`: keep freed host memory in the process (glibc mallopt, jemkit/memory.py); train() from Python leaves the allocator alone
    tensorboard: bool = True  # TensorBoard event files beside metrics.csv (same scalars, buffer statistics, sample grids)
    ema: float = 0.0  # decay of an exponential moving average of the weights (e.g. 0.999; 0 = off): saved with every checkpoint, returned by jemkit.load and used for the run's test evaluation; the training chains keep sampling the live model


@dataclass
class ScoreConfig:
    """Score matching (train.objective = dsm | ssm | ncsn) and annealed Langevin sampling (jemkit/objectives/score.py)."""

    sigma_min: float = 0.01  # dsm, ssm: the one noise level σ (data are perturbed by N(0, σ²)); ncsn: σ_L
    sigma_max: float = 1.0  # ncsn: σ_1 (NCSN: about the largest pairwise distance of the data)
    num_sigmas: int = 10  # ncsn: L levels, geometric from sigma_max to sigma_min
    n_projections: int = 1  # ssm: projections per example
    variance_reduced: bool = True  # ssm: SSM-VR (½‖s‖² in closed form)
    sampler_steps: int = 100  # annealed Langevin: T steps per noise level
    sampler_eps: float = 2.0e-5  # annealed Langevin: α_i = ε·σ_i²/σ_L²
    denoise: bool = True  # annealed Langevin: final step x + σ_L² s(x, σ_L) (NCSNv2)


@dataclass
class GuardConfig:
    """Divergence detection and recovery (see jemkit/training/guard.py)."""

    enabled: bool = True
    energy_bound: float = 1.0e4  # |E| above this on data or samples is divergence
    gap_bound: float = 1.0e3  # |E(x_data) − E(x_sampled)| above this
    grad_bound: float = 1.0e6  # SGLD input-gradient norm (per example, mean) above this
    acc_drop: float = 0.5  # train accuracy (per log interval) falling this far below its best
    max_recoveries: int = 3
    lr_factor: float = 0.5  # on recovery: lr *= lr_factor
    reset_buffer: bool = True  # on recovery: re-initialize the replay buffer
    extra_sgld_steps: int = 0  # on recovery: sampler.steps += this


@dataclass
class EnergyOEConfig:
    """Energy-bounded outlier exposure, train.objective=energy_oe (Liu et al. 2020 §3.2; jemkit/objectives/energy_oe.py)."""

    weight: float = 0.1  # λ of the two squared hinges (the paper's value)
    m_in: float = -25.0  # in-distribution energies are pushed below this (the paper's CIFAR-10 value; margins follow the logits' scale)
    m_out: float = -7.0  # outliers' energies are pushed above this (the paper's CIFAR-10 value)


@dataclass
class Config:
    preset: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    oe: EnergyOEConfig = field(default_factory=EnergyOEConfig)

    def to_dict(self) -> dict:
        return asdict(self)


class ConfigError(ValueError):
    """An unknown key, a value of the wrong type, or an unknown preset."""


# ---------------------------------------------------------------- coercion and merging

def _coerce(value, tp, key: str):
    """Check/convert a YAML value to the annotated field type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(v, item, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp in (int, float) and isinstance(value, str):
        try:  # PyYAML reads "3e-4" as a string (YAML 1.1); accept numeric strings for numeric fields
            value = float(value) if tp is float else int(value)
        except ValueError:
            pass
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")


def _merge(obj, updates: dict, prefix: str = ""):
    """Return a copy of dataclass ``obj`` with nested ``updates`` applied and type-checked."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {updates!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in fields(obj)}
    changes = {}
    for key, value in updates.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{prefix}{key}'{closest(key, names)}; valid: {sorted(names)}")
        current = getattr(obj, key)
        if is_dataclass(current):
            changes[key] = _merge(current, value, f"{prefix}{key}.")
        else:
            changes[key] = _coerce(value, hints[key], prefix + key)
    return dataclasses.replace(obj, **changes)


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key.sub=value`` strings; values are parsed as YAML (``3e-4``, ``true``, ``[0.5, 0.8]``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(value, str) and raw.strip().lower() in {"none", "null", "~"}:
            value = None
        nested: dict = {}
        node = nested
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        cfg = _merge(cfg, nested)
    return cfg


REMOVED_KEYS = {"guard": ("inject_nan_at", "inject_lr_mult_at", "inject_lr_mult")}  # fault injection moved to train(callbacks=...)


def config_from_dict(d: dict) -> Config:
    """A config saved by this or an earlier jemkit (keys since removed are dropped; unknown keys are errors)."""
    d = {k: ({n: x for n, x in v.items() if n not in REMOVED_KEYS.get(k, ())} if isinstance(v, dict) else v)
         for k, v in d.items()}
    return _merge(Config(), d)


# ---------------------------------------------------------------- validation

SCORE_OBJECTIVES = ("dsm", "ssm", "ncsn")  # score-only models: no labels, no buffer, no classifier
SCORE_ARCHS = ("score_mlp", "score_cnn")  # noise-conditional score networks s(x, σ)
TOY_DATASETS = ("8gaussians", "rings", "moons")  # 2-D points (N, 2), jemkit/data/toys.py
USER_DATA_PREFIXES = ("npz:", "imagefolder:")  # data.name of a user's own dataset (jemkit/data/user.py)
SHAPE_FORMAT = re.compile(r"^([1-9]\d*)x([1-9]\d*)x([1-9]\d*)$")  # data.shape, e.g. 3x32x32

CHOICES = {
    "data.name": ("digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "celeba", *TOY_DATASETS),
    "model.arch": ("cnn", "wrn", *SCORE_ARCHS),
    "model.stem": ("default", "small"),
    "model.sigma_mode": ("scale", "embed"),
    "model.norm": ("none", "batch", "layer", "instance"),
    "model.activation": ("leaky_relu", "silu", "relu"),
    "sampler.name": ("sgld", "langevin", "mala"),
    "buffer.init": ("uniform", "class_gaussian"),
    "optim.name": ("adam", "sgd"),
    "train.objective": ("jem", "ebm", "ce", "energy_oe", *SCORE_OBJECTIVES),
    "train.chain_init": ("buffer", "data"),
}
POSITIVE = ["score.sigma_min", "score.num_sigmas", "score.n_projections", "score.sampler_eps", "data.batch_size", "model.width", "model.head_grid", "model.widen", "model.temperature", "buffer.size", "train.steps",
            "train.log_every", "train.eval_every", "train.sample_every", "train.keep_last", "guard.energy_bound",
            "guard.gap_bound", "guard.grad_bound", "guard.lr_factor"]
NON_NEGATIVE = ["data.input_noise", "sampler.steps", "sampler.step_size", "sampler.noise", "optim.lr",
                "optim.weight_decay", "optim.momentum", "optim.warmup", "optim.decay", "train.checkpoint_every",
                "train.seed", "data.labels_per_class", "guard.max_recoveries", "sampler.grad_clip", "train.pxy_weight", "guard.extra_sgld_steps",
                "train.pyx_weight", "train.px_weight", "train.energy_l2", "train.sample_input_noise", "optim.grad_clip",
                "score.sampler_steps", "oe.weight"]
UNIT_INTERVAL = ["buffer.reinit", "guard.acc_drop"]


def get_dotted(cfg: Config, key: str):
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


EXTERNAL_ARCH_PREFIXES = ("torchvision:", "timm:")  # another library's architecture (jemkit/nets/external.py)


def _users_own(key: str, value) -> bool:
    """A user's dataset (``npz:``, ``imagefolder:``) or another library's architecture, checked when built."""
    prefixes = {"data.name": USER_DATA_PREFIXES, "model.arch": EXTERNAL_ARCH_PREFIXES}.get(key)
    return prefixes is not None and isinstance(value, str) and value.startswith(prefixes)


def validate(cfg: Config) -> Config:
    """Check every value before anything runs or any file is written; raise ConfigError naming the key."""
    for key, choices in CHOICES.items():
        value = get_dotted(cfg, key)
        if value not in choices and not _users_own(key, value):
            mine = {"data.name": " or your own as npz:FILE, imagefolder:DIR",
                    "model.arch": " or another library's as torchvision:NAME, timm:NAME"}.get(key, "")
            raise ConfigError(f"{key}: unknown value '{value}'{closest(str(value), choices)}; choose one of {', '.join(choices)}{mine}")
    _validate_user_data(cfg)
    for key in POSITIVE:
        if not get_dotted(cfg, key) > 0:
            raise ConfigError(f"{key} must be > 0, got {get_dotted(cfg, key)}")
    for key in NON_NEGATIVE:
        if not get_dotted(cfg, key) >= 0:
            raise ConfigError(f"{key} must be >= 0, got {get_dotted(cfg, key)}")
    for key in UNIT_INTERVAL:
        if not 0.0 <= get_dotted(cfg, key) <= 1.0:
            raise ConfigError(f"{key} must be in [0, 1], got {get_dotted(cfg, key)}")
    if not 0.0 < cfg.data.test_fraction < 1.0:
        raise ConfigError(f"data.test_fraction must be in (0, 1), got {cfg.data.test_fraction}")
    if any(not 0.0 < f < 1.0 for f in cfg.optim.decay_at):
        raise ConfigError(f"optim.decay_at must hold fractions in (0, 1), got {cfg.optim.decay_at}")
    if cfg.train.pxy_weight > 0 and not cfg.buffer.conditional:
        raise ConfigError("train.pxy_weight > 0 samples x ~ p(x|y): set buffer.conditional=true")
    if cfg.model.arch == "wrn" and (cfg.model.depth - 4) % 6:
        raise ConfigError(f"model.depth must be 6n+4 for a WRN (e.g. 16, 22, 28), got {cfg.model.depth}")
    if not 0.0 <= cfg.train.ema < 1.0:
        raise ConfigError(f"train.ema is the EMA decay and must be in [0, 1) (0 = off), got {cfg.train.ema}")
    if not 0.0 <= cfg.model.dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {cfg.model.dropout}")
    _validate_score(cfg)
    _validate_energy_oe(cfg)
    return cfg


def _validate_user_data(cfg: Config) -> None:
    """A user's dataset names its file or folder; ``data.shape`` reads CxHxW (what it may pad to: jemkit/data/padding.py)."""
    if cfg.data.name.startswith(USER_DATA_PREFIXES) and not cfg.data.name.partition(":")[2]:
        raise ConfigError(f"data.name={cfg.data.name} names no file or folder after the prefix")
    if cfg.data.shape and not SHAPE_FORMAT.match(cfg.data.shape):
        raise ConfigError(f"data.shape must look like CxHxW with positive integers (e.g. 3x32x32), got '{cfg.data.shape}'")


def _validate_score(cfg: Config) -> None:
    """Score objectives train score networks (and only they do); 2-D toys take the MLP, images the CNN."""
    score, arch, data = cfg.train.objective in SCORE_OBJECTIVES, cfg.model.arch, cfg.data.name
    if score and arch not in SCORE_ARCHS:
        raise ConfigError(f"train.objective={cfg.train.objective} trains a score network: set model.arch to one of "
                          f"{', '.join(SCORE_ARCHS)}, got '{arch}'")
    if not score and arch in SCORE_ARCHS:
        raise ConfigError(f"model.arch={arch} is a score network: train it with train.objective "
                          f"{' | '.join(SCORE_OBJECTIVES)}, got '{cfg.train.objective}'")
    if data in TOY_DATASETS and arch != "score_mlp":
        raise ConfigError(f"data.name={data} is 2-D points: train it with model.arch=score_mlp and a score objective")
    if arch == "score_mlp" and data not in TOY_DATASETS:
        raise ConfigError(f"model.arch=score_mlp is for 2-D points ({', '.join(TOY_DATASETS)}); use score_cnn for {data}")
    if score and cfg.data.labels_per_class > 0:
        raise ConfigError("data.labels_per_class is for classifiers; score objectives use no labels")
    if data in TOY_DATASETS and cfg.train.channels_last:
        raise ConfigError("train.channels_last is for images; 2-D points have no channels")
    if cfg.score.sigma_max < cfg.score.sigma_min:
        raise ConfigError(f"score.sigma_max must be >= score.sigma_min, got {cfg.score.sigma_max} < {cfg.score.sigma_min}")


def _validate_energy_oe(cfg: Config) -> None:
    """energy_oe takes outliers from data.outliers or, with none, from the replay buffer's chains; m_in < m_out."""
    oe, d, used = cfg.oe, cfg.data, cfg.train.objective == "energy_oe"
    for bad, message in [
        (d.outliers and not (d.outliers.startswith(USER_DATA_PREFIXES) and d.outliers.partition(":")[2]),
         f"data.outliers must be npz:FILE or imagefolder:DIR, got '{d.outliers}'"),
        (d.outliers and not used, f"data.outliers is read by train.objective=energy_oe only, got '{cfg.train.objective}'"),
        (used and oe.m_in >= oe.m_out, f"oe.m_in must be below oe.m_out (in-distribution energies below outliers'), got {oe.m_in} >= {oe.m_out}"),
        (used and not d.outliers and cfg.train.chain_init != "buffer", "train.objective=energy_oe without data.outliers takes "
         "the replay buffer's SGLD samples as outliers: set train.chain_init=buffer, or give data.outliers=npz:FILE|imagefolder:DIR"),
        (used and d.labels_per_class > 0, "data.labels_per_class: energy_oe trains on labelled images only"),
    ]:
        if bad:
            raise ConfigError(message)


# ---------------------------------------------------------------- presets

def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("jemkit.presets").iterdir() if p.name.endswith(".yaml"))


def preset_description(name: str) -> str:
    text = resources.files("jemkit.presets").joinpath(f"{name}.yaml").read_text()
    first = text.splitlines()[0] if text else ""
    return first.lstrip("# ").strip()


def load_preset(name: str, overrides: list[str] = ()) -> Config:
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset '{name}'{closest(name, names)}; available: {', '.join(names)}")
    d = yaml.safe_load(resources.files("jemkit.presets").joinpath(f"{name}.yaml").read_text()) or {}
    cfg = _merge(Config(), d)
    cfg = dataclasses.replace(cfg, preset=name)
    return validate(apply_overrides(cfg, list(overrides)))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def load_config(path: str | Path) -> Config:
    return config_from_dict(yaml.safe_load(Path(path).read_text()) or {})
