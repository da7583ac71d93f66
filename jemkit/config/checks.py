"""Every value checked before anything runs or any file is written: choices, ranges, cross-field rules."""
from __future__ import annotations

from ..utils import closest
from .schema import (AUGMENT_KINDS, EXTERNAL_ARCH_PREFIXES, NEGATIVE_KINDS, SCORE_ARCHS, SCORE_OBJECTIVES, SHAPE_FORMAT, TOY_DATASETS,
                     USER_DATA_PREFIXES, Config, ConfigError)

CHOICES = {
    "data.name": ("digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "celeba", *TOY_DATASETS),
    "model.arch": ("cnn", "wrn", *SCORE_ARCHS),
    "model.stem": ("default", "small"),
    "model.sigma_mode": ("scale", "embed"),
    "model.norm": ("none", "batch", "layer", "instance"),
    "model.activation": ("leaky_relu", "silu", "relu"),
    "sampler.name": ("sgld", "langevin", "mala"),
    "buffer.init": ("uniform", "gaussian", "class_gaussian"),
    "optim.name": ("adam", "sgd"),
    "train.objective": ("jem", "ebm", "ce", "energy_oe", "tilt", *SCORE_OBJECTIVES),
    "train.chain_init": ("buffer", "data"),
    "oe.margins": ("fixed", "auto"),
}
POSITIVE = ["score.sigma_min", "score.num_sigmas", "score.n_projections", "score.sampler_eps", "data.batch_size", "model.width", "model.head_grid", "model.widen", "model.temperature", "buffer.size", "train.steps",
            "train.log_every", "train.eval_every", "train.sample_every", "train.keep_last", "guard.energy_bound", "oe.margin_gap",
            "guard.gap_bound", "guard.grad_bound", "guard.lr_factor", "train.px_every"]
NON_NEGATIVE = ["data.input_noise", "sampler.steps", "sampler.step_size", "sampler.noise", "optim.lr",
                "optim.weight_decay", "optim.momentum", "optim.warmup", "optim.decay", "train.checkpoint_every",
                "train.seed", "data.labels_per_class", "guard.max_recoveries", "sampler.grad_clip", "train.pxy_weight", "guard.extra_sgld_steps",
                "train.pyx_weight", "train.px_weight", "train.energy_l2", "train.sample_input_noise", "optim.grad_clip", "sampler.fresh_steps",
                "score.sampler_steps", "oe.weight", "train.sample_batch", "train.px_start", "train.eval_samples"]
UNIT_INTERVAL = ["buffer.reinit", "guard.acc_drop"]


def get_dotted(cfg: Config, key: str):
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


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
    _validate_px_schedule(cfg)
    _validate_adversarial(cfg)
    return cfg


def _validate_adversarial(cfg: Config) -> None:
    """adv.* (adversarial training of the cross-entropy) applies to objectives ce, jem and energy_oe, with ε in [0, 1) pixel units."""
    adv = cfg.adv
    if not 0.0 <= adv.eps < 1.0:
        raise ConfigError(f"adv.eps is an L∞ radius in [0, 1] pixel units and must be in [0, 1) (0 = off), got {adv.eps}")
    if adv.eps == 0:
        return
    for bad, message in [
        (cfg.train.objective not in ("ce", "jem", "energy_oe"), f"adv.eps > 0 trains the cross-entropy on adversarial "
         f"images: it needs train.objective=ce, jem or energy_oe, got '{cfg.train.objective}'"),
        (adv.steps < 1, f"adv.steps must be >= 1, got {adv.steps}"),
        (adv.step_size < 0, f"adv.step_size must be >= 0 (0: the default for adv.steps), got {adv.step_size}"),
        (not 0.0 <= adv.clean_weight < 1.0, f"adv.clean_weight must be in [0, 1) (1 would be no adversarial training), "
         f"got {adv.clean_weight}"),
    ]:
        if bad:
            raise ConfigError(message)


def _validate_px_schedule(cfg: Config) -> None:
    """The cheaper log p(x) levers (fewer chains, fewer steps with chains) and evaluation-time samples need a JEM-style
    classifier objective."""
    t = cfg.train
    if (t.sample_batch or t.px_start or t.px_every != 1) and t.objective not in ("jem", "tilt"):
        raise ConfigError(f"train.sample_batch, train.px_start and train.px_every schedule JEM's log p(x) term: "
                          f"set train.objective=jem (or tilt), got '{t.objective}'")
    if t.negatives:
        if t.objective not in ("ebm", "jem"):
            raise ConfigError(f"train.negatives adds negatives to the log p(x) term's contrast: set "
                              f"train.objective=ebm or jem, got '{t.objective}'")
        kinds = [k.strip() for k in t.negatives.split("+")]
        if not all(kinds) or len(set(kinds)) != len(kinds) or not set(kinds) <= set(NEGATIVE_KINDS):
            raise ConfigError(f"train.negatives must be kinds joined by + from {', '.join(NEGATIVE_KINDS)} (each once), "
                              f"got '{t.negatives}'")
    if (t.negatives_per_image != 1 or t.negatives_loss != "contrastive") and not t.negatives:
        raise ConfigError("train.negatives_per_image and train.negatives_loss shape the negatives of train.negatives: set "
                          "train.negatives (e.g. rotate+flip+swap+mix)")
    if t.negatives_loss not in ("contrastive", "rank"):
        raise ConfigError(f"train.negatives_loss must be contrastive or rank, got '{t.negatives_loss}'")
    if t.negatives_loss == "rank" and t.objective != "ebm":
        raise ConfigError(f"train.negatives_loss=rank is implemented for train.objective=ebm, got '{t.objective}'")
    if not isinstance(t.negatives_per_image, int) or t.negatives_per_image < 1:
        raise ConfigError(f"train.negatives_per_image must be an integer >= 1, got {t.negatives_per_image!r}")
    if t.objective == "tilt" and t.sample_batch == 1:
        raise ConfigError("train.objective=tilt weighs its base draws against each other: train.sample_batch must be 0 or >= 2")
    if t.px_start >= t.steps and t.objective in ("jem", "tilt") and t.px_start:
        raise ConfigError(f"train.px_start ({t.px_start}) must be below train.steps ({t.steps}): the log p(x) term would never run")
    if t.eval_samples and t.objective in SCORE_OBJECTIVES:
        raise ConfigError("train.eval_samples draws class-conditional samples from a classifier; score models have no classes")


def _validate_user_data(cfg: Config) -> None:
    """A user's dataset names its file or folder; ``data.shape`` reads CxHxW (what it may pad to: jemkit/data/padding.py);
    ``data.augment`` names known kinds (jemkit/data/augment.py), ``data.shift`` >= 0."""
    if cfg.data.name.startswith(USER_DATA_PREFIXES) and not cfg.data.name.partition(":")[2]:
        raise ConfigError(f"data.name={cfg.data.name} names no file or folder after the prefix")
    if cfg.data.shape and not SHAPE_FORMAT.match(cfg.data.shape):
        raise ConfigError(f"data.shape must look like CxHxW with positive integers (e.g. 3x32x32), got '{cfg.data.shape}'")
    d = cfg.data
    kinds = [k.strip() for k in d.augment.split("+")] if d.augment.strip() else []
    if not all(kinds) or len(set(kinds)) != len(kinds) or not set(kinds) <= set(AUGMENT_KINDS):
        raise ConfigError(f"data.augment must be kinds joined by + from {', '.join(AUGMENT_KINDS)} (each once), got '{d.augment}'")
    if not isinstance(d.shift, int) or d.shift < 0:
        raise ConfigError(f"data.shift must be an integer >= 0, got {d.shift!r}")
    if kinds and d.name in TOY_DATASETS:
        raise ConfigError(f"data.augment flips and shifts images; data.name={d.name} is 2-D points")


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
    """energy_oe takes outliers from data.outliers or, with none, from the replay buffer's chains; jem and tilt take
    data.outliers for their outlier term; m_in < m_out."""
    oe, d, used = cfg.oe, cfg.data, cfg.train.objective == "energy_oe"
    hinged = used or (cfg.train.objective in ("jem", "tilt") and bool(d.outliers))  # the runs the oe.* settings apply to
    for bad, message in [
        (d.outliers and not (d.outliers.startswith((*USER_DATA_PREFIXES, "generated:")) and d.outliers.partition(":")[2]),
         f"data.outliers must be npz:FILE, imagefolder:DIR or generated:KINDS (patches, shapes, spectral, joined by '+'), got '{d.outliers}'"),
        (d.outliers and cfg.train.objective not in ("energy_oe", "jem", "tilt"),
         f"data.outliers is read by train.objective=energy_oe, jem or tilt only, got '{cfg.train.objective}'"),
        (oe.margins == "auto" and not (hinged and d.outliers), "oe.margins=auto measures the model's energies on "
         "data.outliers: set data.outliers=npz:FILE|imagefolder:DIR|generated:KINDS (with train.objective=energy_oe, jem or tilt)"),
        (oe.chains and not (used and d.outliers), "oe.chains=true adds the SGLD samples to data.outliers as outliers: "
         "it needs train.objective=energy_oe and data.outliers (without data.outliers energy_oe takes the samples alone)"),
        (hinged and oe.margins == "fixed" and oe.m_in >= oe.m_out, f"oe.m_in must be below oe.m_out (in-distribution energies below outliers'), got {oe.m_in} >= {oe.m_out}"),
        (used and not d.outliers and cfg.train.chain_init != "buffer", "train.objective=energy_oe without data.outliers takes "
         "the replay buffer's SGLD samples as outliers: set train.chain_init=buffer, or give data.outliers=npz:FILE|imagefolder:DIR"),
        (used and d.labels_per_class > 0, "data.labels_per_class: energy_oe trains on labelled images only"),
    ]:
        if bad:
            raise ConfigError(message)
