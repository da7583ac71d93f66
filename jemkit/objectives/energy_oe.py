"""Energy-bounded outlier exposure (Liu et al. 2020, "Energy-based Out-of-distribution Detection", §3.2, eq. 7-8).

    L = CE(f(x_in), y) + λ · ( E_in[max(0, E(x_in) − m_in)²] + E_out[max(0, m_out − E(x_out))²] )

with E(x) = −T · logsumexp_y f(x)[y] / T (the energy's own temperature T). The two squared hinges push
in-distribution energies below m_in and auxiliary outliers' energies above m_out; inside the margins they
are zero. Defaults λ = 0.1, m_in = −25, m_out = −7 are the paper's CIFAR-10 values (§4.1); the margins
depend on the scale of a model's logits, so other data sets and nets may need others: ``margins_from_energies``
sets them from a model's own energies (config ``oe.margins=auto``).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..energy import ClassifierEnergy
from .adversarial import adversarial_ce
from .output import LossOutput, classification_stats


def energy_hinges(e_in: Tensor, e_out: Tensor, m_in: float, m_out: float) -> tuple[Tensor, Tensor]:
    """(mean max(0, E(x_in) − m_in)², mean max(0, m_out − E(x_out))²): zero inside the margins."""
    return (e_in - m_in).relu().square().mean(), (m_out - e_out).relu().square().mean()


def outlier_term(energy: ClassifierEnergy, e_in: Tensor, x_out: Tensor, oe_weight: float, m_in: float,
                 m_out: float) -> tuple[Tensor, dict]:
    """(loss, stats) of the outlier term another objective adds (JEM, the tilt): ``oe_weight``·(hinge_in +
    hinge_out) on the in-distribution energies ``e_in`` (B,) and the energies of the outliers ``x_out``."""
    if m_in >= m_out:
        raise ValueError(f"the outlier term needs m_in < m_out, got m_in={m_in}, m_out={m_out}")
    e_out = energy(x_out)
    hinge_in, hinge_out = energy_hinges(e_in, e_out, m_in, m_out)
    stats = {"e_in": e_in.mean().detach(), "e_out": e_out.mean().detach(), "hinge_in": hinge_in.detach(),
             "hinge_out": hinge_out.detach()}
    return oe_weight * (hinge_in + hinge_out), stats


def margins_from_energies(e_in: Tensor, e_out: Tensor, gap: float) -> tuple[float, float]:
    """(m_in, m_out) = (median E(x_in), median E(x_out)), moved apart symmetrically about their midpoint to at
    least ``gap``: margins on the model's own energy scale, so the hinges start at about half of each set."""
    lo, hi = e_in.median().item(), e_out.median().item()
    mid, half = (lo + hi) / 2, max((hi - lo) / 2, gap / 2)
    return mid - half, mid + half


def energy_oe(
    energy: ClassifierEnergy,
    x_in: Tensor,
    y: Tensor,
    x_out: Tensor,
    *,
    weight: float = 0.1,
    m_in: float = -25.0,
    m_out: float = -7.0,
    x_adv: Tensor | None = None,
    clean_weight: float = 0.0,
) -> LossOutput:
    """CE on labelled in-distribution images + ``weight`` · the energy hinges on (x_in, x_out outliers). With
    adversarial images ``x_adv`` of the batch the CE is ``adversarial_ce`` (the hinges stay on the clean images)."""
    if m_in >= m_out:
        raise ValueError(f"energy_oe needs m_in < m_out (in-distribution energies below outliers'), got m_in={m_in}, m_out={m_out}")
    logits = energy.logits(x_in)  # (B, K)
    if x_adv is None:
        ce = F.cross_entropy(logits, y)
        stats = classification_stats(logits, y, ce)
    else:
        ce, stats = adversarial_ce(energy, x_adv, y, logits, clean_weight)
    e_in, e_out = energy.energy_from_logits(logits), energy(x_out)  # (B,), (B',)
    hinge_in, hinge_out = energy_hinges(e_in, e_out, m_in, m_out)
    stats.update(e_in=e_in.mean().detach(), e_out=e_out.mean().detach(), hinge_in=hinge_in.detach(), hinge_out=hinge_out.detach())
    return LossOutput(ce + weight * (hinge_in + hinge_out), stats)
