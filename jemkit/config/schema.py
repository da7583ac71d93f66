"""The typed configs: one dataclass per component, composed in ``Config``; constants every layer reads."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

SCORE_OBJECTIVES = ("dsm", "ssm", "ncsn")
AUGMENT_KINDS = ("mirror", "shift")  # data.augment (jemkit/data/augment.py)
NEGATIVE_KINDS = ("rotate", "flip", "swap", "mix", "jigsaw")  # train.negatives (jemkit/data/negatives.py)  # score-only models: no labels, no buffer, no classifier
SCORE_ARCHS = ("score_mlp", "score_cnn")  # noise-conditional score networks s(x, σ)
TOY_DATASETS = ("8gaussians", "rings", "moons")  # 2-D points (N, 2), jemkit/data/toys.py
USER_DATA_PREFIXES = ("npz:", "imagefolder:")  # data.name of a user's own dataset (jemkit/data/user.py)
EXTERNAL_ARCH_PREFIXES = ("torchvision:", "timm:")  # another library's architecture (jemkit/nets/external.py)
SHAPE_FORMAT = re.compile(r"^([1-9]\d*)x([1-9]\d*)x([1-9]\d*)$")  # data.shape, e.g. 3x32x32


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
    augment: str = ""  # label-preserving augmentation of every training batch, before input_noise: kinds joined by + from mirror (left-right flip, p = 1/2), shift (translation by up to data.shift pixels, reflection padding) (jemkit/data/augment.py)
    shift: int = 2  # data.augment's shift: the largest translation in pixels (the JEM code's CIFAR-10 crop: 4)
    outliers: str = ""  # auxiliary outlier images for train.objective=energy_oe (or jem's outlier term): npz:FILE | imagefolder:DIR | generated:KINDS, KINDS of patches, shapes, spectral joined by + (jemkit/data/outliers.py) ("" = energy_oe: the replay buffer's SGLD samples stand in; jem: no outlier term)


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
    fresh_steps: int = 0  # length of fresh chains from the training init in `jemkit sample` and the samples suite (0 = steps); a PCD model's chains may need many more steps than one update runs


@dataclass
class BufferConfig:
    size: int = 10000
    reinit: float = 0.05
    init: str = "uniform"  # uniform (JEM) | gaussian (one Gaussian fitted to the training images, labels unused) | class_gaussian (JEM++ informative init, fitted to the labelled training data)
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
    objective: str = "jem"  # jem | ebm (unconditional, labels unused) | ce (discriminative baseline) | energy_oe (energy-bounded outlier exposure, see oe.*) | tilt (JEM as an exponential tilt of the training images' Gaussian, p(x) ∝ N(x) e^{−E(x)}: log p(x) importance-sampled from the Gaussian, no chains) | dsm | ssm | ncsn (score matching, see score.*)
    chain_init: str = "buffer"  # buffer (PCD) | data (contrastive divergence CD-k, k = sampler.steps)
    steps: int = 2000
    pyx_weight: float = 1.0
    px_weight: float = 1.0
    pxy_weight: float = 0.0  # JEM's log p(x, y) term: E(x, y) − E(x', y), x' ~ p(x|y); needs buffer.conditional
    energy_l2: float = 0.0
    negatives: str = ""  # objectives ebm and jem: extra negatives of the contrastive term made from each batch (negative data augmentation, Sinha et al. 2021): kinds joined by + from rotate, flip, swap, mix, jigsaw (jemkit/data/negatives.py)
    negatives_per_image: int = 1  # with train.negatives: this many negative augmentations of each batch image (each kind drawn anew)
    negatives_loss: str = "contrastive"  # with train.negatives: contrastive (they join the chains' samples in mean E(x) − mean E(x')) | rank (objective ebm: each image ranked against its own negatives, −log e^{−E(x)} / (e^{−E(x)} + Σ_k e^{−E(x̃_k)}), added to the chains' term; conditional NCE, Ceylan & Gutmann 2018)
    sample_input_noise: float = 0.0  # σ of N(0, σ²) added to chain samples in the loss (match data.input_noise; the buffer keeps clean chains)
    sample_batch: int = 0  # chains advanced per step for the log p(x) term (tilt: draws of the Gaussian) (0, or data.batch_size and above: one per image; global under torchrun, like the batch)
    px_start: int = 0  # the log p(x) term and its chains start at this step; before it the step is cross-entropy only (a classifier warm start)
    px_every: int = 1  # from px_start on, the log p(x) term and its chains run every k-th step only (cross-entropy only on the others)
    bf16: bool = False  # the whole step's passes (loss forward and backward, and the sampler's) under bfloat16 autocast; weights, gradients and optimizer state stay float32
    log_every: int = 50
    eval_every: int = 500
    eval_samples: int = 0  # at every evaluation, draw this many class-conditional fresh chains per class (training init and sampler) and log their class agreement as test_agreement (0 = off)
    sample_every: int = 500
    checkpoint_every: int = 0  # 0: only at the start and the end
    keep_last: int = 3  # checkpoints kept (plus the best by test accuracy)
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False  # torch.use_deterministic_algorithms (bitwise resume on GPU too)
    channels_last: bool = False  # NHWC memory format for the network, data and buffer (faster convolutions)
    norm_eval: bool = False  # batch-norm layers stay in eval mode while training: the running statistics (a pretrained model's) are used and never updated, so data and SGLD samples are normalized alike (fine-tuning)
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
    margins: str = "fixed"  # fixed (m_in, m_out as set) | auto (from the model at step 0: m_in = median energy of training images, m_out = median energy of the outliers, moved apart to at least margin_gap; needs data.outliers)
    margin_gap: float = 2.0  # margins=auto: the least m_out − m_in
    chains: bool = False  # energy_oe with data.outliers: also take the step's SGLD samples (sampler, buffer) as outliers, beside data.outliers


@dataclass
class AdversarialConfig:
    """Adversarial training of the cross-entropy term, objectives ce, jem and energy_oe: PGD L∞ from a random start
    (Madry et al. 2018; one step: Wong et al. 2020's fast FGSM) on every labelled batch (jemkit/objectives/adversarial.py)."""

    eps: float = 0.0  # radius in [0, 1] pixel units, as the robustness suite's ε (model inputs read [−1, 1]: 2ε there); 0 = off
    steps: int = 1  # gradient-sign steps per batch (each one forward and backward of the batch)
    step_size: float = 0.0  # in [0, 1] pixel units; 0: 1.25·eps for one step, 2.5·eps/steps for more
    clean_weight: float = 0.0  # the cross-entropy is (1 − w)·CE(adversarial) + w·CE(clean)


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
    adv: AdversarialConfig = field(default_factory=AdversarialConfig)

    def to_dict(self) -> dict:
        return asdict(self)


class ConfigError(ValueError):
    """An unknown key, a value of the wrong type, or an unknown preset."""
