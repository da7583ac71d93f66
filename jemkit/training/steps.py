"""The one place where energy, sampler, buffer and objective meet: one training step each."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..config import Config, EnergyOEConfig, ScoreConfig, TrainConfig
from ..energy import ClassifierEnergy
from ..objectives import (LossOutput, contrastive_divergence, contrastive_term, denoising_score_matching, discriminative,
                          energy_oe, jem_hybrid, jem_tilted, ranked_negatives,
                          joint_contrastive, ncsn_loss, sliced_score_matching)
from ..data import negative_augment, parse_negatives
from ..sampling import ReplayBuffer, RidgedGaussian, noise_levels
from ..utils import frozen, make_generator


def ce_step(energy: ClassifierEnergy, x: Tensor, y: Tensor, *, x_adv: Tensor | None = None, clean_weight: float = 0.0,
            **_) -> LossOutput:
    """Discriminative baseline step: cross-entropy on the labelled batch (on its adversarial images ``x_adv`` with
    ``adv.eps`` > 0, mixed with the clean batch's by ``clean_weight``)."""
    return discriminative(energy, x, y, x_adv=x_adv, clean_weight=clean_weight)


def make_negatives(x: Tensor, train: TrainConfig, generator: torch.Generator | None) -> Tensor:
    """``train.negatives_per_image`` negative augmentations of each image of ``x`` (K·N, C, H, W), the k-th
    block the k-th negative of every image (``data/negatives.py``), drawn by ``generator``."""
    kinds = parse_negatives(train.negatives)
    return torch.cat([negative_augment(x, kinds, generator) for _ in range(train.negatives_per_image)])


class Chains:
    """Advances MCMC chains for one training step and keeps what the guard and the log need:
    the last step's ∇ₓE (``sgld_grad_norm``) and MALA's acceptances (``accept_rate``).

    Chains start from the replay buffer (PCD; 5% re-initialized) or, with ``train.chain_init=data``,
    from the data batch itself (contrastive divergence CD-k, k = sampler steps).
    """

    def __init__(self, energy, sampler: Callable, buffer: ReplayBuffer | None, train: TrainConfig,
                 generator: torch.Generator | None):
        self.energy, self.sampler, self.buffer, self.train, self.generator = energy, sampler, buffer, train, generator
        self.last: dict = {}
        self.accepts: list[Tensor] = []

    def _record(self, info: dict) -> None:
        self.last.update(info)
        if "accept" in info:
            self.accepts.append(info["accept"])

    def advance(self, x: Tensor, y_chain: Tensor | None = None) -> Tensor:
        """Run the chains one training step; return the samples the loss sees.

        ``train.sample_batch`` > 0 advances that many chains (the first rows of ``x`` for CD-k) instead of one per
        data image; the p(x|y) chains of ``pxy_weight`` always follow the batch's labels, one per image.
        With ``train.sample_input_noise = σ`` the loss sees x_sampled + N(0, σ²): the same noise the data
        stream adds to training images, so the energy cannot tell data from samples by their noise level
        (the buffer keeps the clean chains).
        """
        if y_chain is None and 0 < self.train.sample_batch < x.shape[0]:  # fewer chains than data (train.sample_batch)
            x = x[: self.train.sample_batch]
        if self.train.chain_init == "data":
            x_sampled = self.sampler(self.energy, x, y=y_chain, generator=self.generator, callback=self._record)
        else:
            draw = self.buffer.sample(x.shape[0], y=y_chain, generator=self.generator)
            x_sampled = self.sampler(self.energy, draw.x, y=draw.y, generator=self.generator, callback=self._record)
            self.buffer.push(x_sampled, draw.index)
        sigma = self.train.sample_input_noise
        if sigma > 0:
            noise = torch.randn(x_sampled.shape, generator=self.generator, device=x_sampled.device, dtype=x_sampled.dtype)
            x_sampled = x_sampled + sigma * noise
        return x_sampled

    def stats(self) -> dict[str, Tensor]:
        out = {}
        if "grad" in self.last:  # ‖∇ₓE‖ at the chain's last step, mean over the batch
            out["sgld_grad_norm"] = self.last["grad"].flatten(1).norm(dim=1).mean()
        if self.accepts:
            out["accept_rate"] = torch.stack(self.accepts).mean()
        return out


def jem_step(
    energy: ClassifierEnergy,
    x: Tensor,
    y: Tensor,
    *,
    sampler: Callable,
    buffer: ReplayBuffer | None,
    train: TrainConfig,
    generator: torch.Generator | None = None,
    x_unlabeled: Tensor | None = None,
    oe: EnergyOEConfig | None = None,
    outliers: Tensor | None = None,
    x_adv: Tensor | None = None,
    clean_weight: float = 0.0,
) -> LossOutput:
    """JEM step: advance chains (PCD from the buffer, or CD-k from the data), and return the hybrid
    loss CE(f(x), y) + E(x) − E(x_sampled).

    With a class-conditional buffer the chains follow E(x, y') for classes y' drawn uniformly
    (samples from p(y) p(x|y), JEM's p(x|y)-factored variant); ``train.pxy_weight > 0`` adds
    JEM's log p(x, y) term with chains conditioned on the batch's own labels. With ``outliers``
    (config ``data.outliers``) the loss adds the energy-bounded outlier term with ``oe``'s weight and
    margins on as many outliers as labelled images (drawn as ``energy_oe_step`` draws them); with
    ``train.px_every`` > 1 it rides with the log p(x) term, on the steps where that runs. With
    ``train.negatives`` one negative augmentation of each image of the log p(x) batch (the unlabeled one in
    semi-supervised training) joins the chains' samples (``data/negatives.py``). With ``x_adv`` (``adv.eps`` > 0) the
    cross-entropy is taken on the batch's adversarial images (``objectives/adversarial.py``), log p(x) on the clean ones.
    """
    chains = Chains(energy, sampler, buffer, train, generator)
    x_px = x if x_unlabeled is None else x_unlabeled
    x_sampled = chains.advance(x_px)
    if train.negatives:  # negative data augmentation of the log p(x) batch joins the chains' samples
        x_sampled = torch.cat([x_sampled, make_negatives(x_px, train, generator)])
    hinge = outlier_kwargs(oe, outliers, x.shape[0], generator)
    out = jem_hybrid(
        energy, x, y, x_sampled,
        pyx_weight=train.pyx_weight, px_weight=train.px_weight, energy_l2=train.energy_l2, x_unlabeled=x_unlabeled, **hinge,
        x_adv=x_adv, clean_weight=clean_weight,
    )
    if train.pxy_weight > 0:
        joint = joint_contrastive(energy, x, y, chains.advance(x, y))
        out = LossOutput(out.loss + train.pxy_weight * joint.loss, {**out.stats, **joint.stats})
    out.stats.update(chains.stats())
    return out


def ebm_step(
    energy: ClassifierEnergy,
    x: Tensor,
    y: Tensor,
    *,
    sampler: Callable,
    buffer: ReplayBuffer | None,
    train: TrainConfig,
    generator: torch.Generator | None = None,
    x_unlabeled: Tensor | None = None,
) -> LossOutput:
    """Unconditional EBM by maximum likelihood (IGEBM, Du & Mordatch 2019): E(x) − E(x_sampled)
    (+ L2 energy penalty), labels unused. E(x) = −logsumexp f(x) of the same backbone. With
    ``train.negatives`` the negatives also take one negative augmentation of each image of the batch
    (Sinha et al. 2021; ``data/negatives.py``), drawn by ``generator``: they join the chains' samples, or with
    ``train.negatives_loss=rank`` each image is ranked against its own (``objectives/contrastive.py``
    ``ranked_negatives``), a term added to the chains' contrast."""
    chains = Chains(energy, sampler, buffer, train, generator)
    x_negative = chains.advance(x)
    if not train.negatives or train.negatives_loss == "contrastive":
        if train.negatives:  # negative data augmentation: transformed copies of each image join the chains' samples
            x_negative = torch.cat([x_negative, make_negatives(x, train, generator)])
        out = contrastive_divergence(energy, x, x_negative, energy_l2=train.energy_l2)
    else:
        e_data, e_sample = energy(x), energy(x_negative)
        loss, gap = contrastive_term(e_data, e_sample, train.energy_l2)
        e_augmented = energy(make_negatives(x, train, generator)).view(train.negatives_per_image, len(x))
        rank, ranked = ranked_negatives(e_data, e_augmented)
        out = LossOutput(loss + rank, {"e_data": e_data.mean().detach(), "e_sample": e_sample.mean().detach(),
                                       "gap": gap.detach(), "rank_loss": rank.detach(), "rank_acc": ranked.detach()})
    out.stats.update(chains.stats())
    return out


def tilt_step(
    energy: ClassifierEnergy,
    x: Tensor,
    y: Tensor,
    *,
    base: RidgedGaussian,
    train: TrainConfig,
    generator: torch.Generator | None = None,
    x_unlabeled: Tensor | None = None,
    sampler: Callable | None = None,
    buffer: ReplayBuffer | None = None,
    oe: EnergyOEConfig | None = None,
    outliers: Tensor | None = None,
) -> LossOutput:
    """JEM as an exponential tilt of the training images' Gaussian (``objectives/tilt.py``): CE plus the log p(x)
    term importance-sampled from ``train.sample_batch`` exact draws of ``base`` (a batch's worth when 0), drawn
    by ``generator``. No chains: ``sampler`` and ``buffer`` are unused (the steps' one signature). With
    ``data.outliers``, the outlier hinges of ``oe`` on as many outliers as images, drawn by ``generator``."""
    n = train.sample_batch or x.shape[0]
    x_base = base.sample(n, tuple(x.shape[1:]), generator=generator)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        x_base = x_base.contiguous(memory_format=torch.channels_last)
    hinge = outlier_kwargs(oe, outliers, x.shape[0], generator)
    return jem_tilted(energy, x, y, x_base, pyx_weight=train.pyx_weight, px_weight=train.px_weight,
                      energy_l2=train.energy_l2, x_unlabeled=x_unlabeled, **hinge)


def outlier_kwargs(oe: EnergyOEConfig | None, outliers: Tensor | None, n: int, generator: torch.Generator | None) -> dict:
    """The outlier term's arguments of ``jem_hybrid`` / ``jem_tilted`` (``n`` outliers drawn by ``generator`` and
    the margins of ``oe``); none without ``data.outliers``."""
    if outliers is None:
        return {}
    return {"x_out": draw_outliers(outliers, n, generator), "oe_weight": oe.weight, "m_in": oe.m_in, "m_out": oe.m_out}


def draw_outliers(outliers: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """``n`` of the auxiliary ``outliers`` (N, C, H, W), uniformly with replacement by ``generator``."""
    return outliers[torch.randint(len(outliers), (n,), generator=generator, device=outliers.device)]


def energy_oe_step(
    energy: ClassifierEnergy,
    x: Tensor,
    y: Tensor,
    *,
    oe: EnergyOEConfig,
    outliers: Tensor | None,
    sampler: Callable,
    buffer: ReplayBuffer | None,
    train: TrainConfig,
    generator: torch.Generator | None = None,
    x_unlabeled: Tensor | None = None,
    x_adv: Tensor | None = None,
    clean_weight: float = 0.0,
) -> LossOutput:
    """Energy-bounded outlier exposure (Liu et al. 2020 §3.2, ``objectives/energy_oe.py``):
    CE(f(x_in), y) + λ·(E[max(0, E(x_in) − m_in)²] + E[max(0, m_out − E(x_out))²]), x_out as many as x_in.

    With ``outliers`` (config ``data.outliers``, (N, C, H, W)) x_out is drawn from them uniformly with
    replacement by ``generator``, the sampler generator every checkpoint saves, so a resumed run draws the
    same outliers. Without, x_out are this step's SGLD samples from the replay buffer (as ``jem_step`` draws
    them), detached: the model's own samples stand in for real outliers; ``oe.chains`` takes both (the
    outliers and the samples, one of each per labelled image). That hybrid is jemkit's variant,
    not the paper's: like JEM it raises the energy where the model's chains go, but through the bounded
    hinge instead of the unbounded contrastive term E(x) − E(x_sampled). ``x_unlabeled`` is refused by
    the config (``data.labels_per_class``); the parameter keeps the steps' one signature. With ``x_adv``
    (``adv.eps`` > 0) the cross-entropy is taken on the batch's adversarial images, the hinges on the clean ones.
    """
    chains, x_out = None, []
    if outliers is not None:
        x_out.append(draw_outliers(outliers, x.shape[0], generator))
    if outliers is None or oe.chains:
        chains = Chains(energy, sampler, buffer, train, generator)
        x_out.append(chains.advance(x).detach())
    x_out = torch.cat(x_out)
    out = energy_oe(energy, x, y, x_out, weight=oe.weight, m_in=oe.m_in, m_out=oe.m_out, x_adv=x_adv,
                    clean_weight=clean_weight)
    if chains is not None:
        out.stats.update(chains.stats())
    return out


def draws_chains(cfg: Config) -> bool:
    """Whether a run's step samples from the model: jem, ebm, and energy_oe with no ``data.outliers`` or with ``oe.chains``."""
    objective = cfg.train.objective
    return objective in ("jem", "ebm") or (objective == "energy_oe" and (not cfg.data.outliers or cfg.oe.chains))


# ---------------------------------------------------------------- score matching (score-only models; labels unused)

def dsm_step(score_fn, x: Tensor, y: Tensor, *, score: ScoreConfig, generator: torch.Generator | None = None) -> LossOutput:
    """Denoising score matching at the one level σ = ``score.sigma_min``, σ²-weighted: ½ E‖σ s(x + σz, σ) + z‖²."""
    return denoising_score_matching(score_fn, x, score.sigma_min, generator=generator)


def ssm_step(score_fn, x: Tensor, y: Tensor, *, score: ScoreConfig, generator: torch.Generator | None = None) -> LossOutput:
    """Sliced score matching (SSM-VR by default) on x + σz, σ = ``score.sigma_min``: it learns the score of the
    same smoothed data p_σ as ``dsm`` without using the noise's known score (and samples the same way)."""
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return sliced_score_matching(score_fn, x + score.sigma_min * z, score.n_projections, sigma=score.sigma_min,
                                 variance_reduced=score.variance_reduced, generator=generator)


def ncsn_step(score_fn, x: Tensor, y: Tensor, *, score: ScoreConfig, generator: torch.Generator | None = None) -> LossOutput:
    """NCSN: σ²-weighted denoising score matching with one σ per example from the geometric sequence."""
    return ncsn_loss(score_fn, x, noise_levels("ncsn", score), generator=generator)


SCORE_STEPS = {"dsm": dsm_step, "ssm": ssm_step, "ncsn": ncsn_step}


@torch.no_grad()
def held_out_score_loss(model, x: Tensor, objective: str, score: ScoreConfig, *, max_examples: int = 2000,
                        batch_size: int = 500, seed: int = 0) -> float:
    """The objective on the first ``max_examples`` held-out examples with fixed noise (``seed``), so the
    number is comparable between evaluations of one run. Mode and grad flags of ``model`` are restored."""
    x = x[:max_examples]
    generator, total = make_generator(x.device, seed), 0.0
    with frozen(model):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            total += SCORE_STEPS[objective](model, xb, None, score=score, generator=generator).loss.item() * len(xb)
    return total / len(x)


STEPS = {"jem": jem_step, "ebm": ebm_step, "ce": ce_step, "energy_oe": energy_oe_step, "tilt": tilt_step, **SCORE_STEPS}
