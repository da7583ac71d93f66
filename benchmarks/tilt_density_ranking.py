"""Can outlier exposure on the *density* make a tilted JEM's log p(x) rank OOD images below clothing? (issue 14, the
likelihood promise's second half; a measurement, not a recipe).

A tilted model (``train.objective=tilt``) has log p(x) = log N(x) − E(x) − log Z. Its outlier hinges act on E alone;
this script fine-tunes such a checkpoint with, in addition, the margin ranking loss that Hendrycks, Mazeika &
Dietterich (2019, "Deep Anomaly Detection with Outlier Exposure", §4.2: PixelCNN++ with OE) put on a density model:

    L_rank = mean_ij max(0, m + log p̃(x_out_j) − log p̃(x_in_i)),   log p̃ = log N − E   (log Z cancels),

the in-distribution side detached (the data's density stays the likelihood term's job), x_out = the run's generated
outliers plus one negative augmentation (``data/negatives.py``) of each batch image. The rest of the step is the
preset's: CE + 0.1 · the importance-sampled log p(x) term (energy L2 0.01) + 0.01 · the energy hinges (m_in −40,
m_out 60). Every ``--eval-every`` steps it prints the AUROC of log p̃ (test against each OOD set of the OOD suite,
2,000 images each, seeded), log Z by importance sampling from 10,000 Gaussian draws (rough: its ESS is printed) and
the tilt's gain over the Gaussian in nats per test image (−mean E(x_test) − log Z), and, at the start, each set's
median log N(x) relative to the test set's: how far the Gaussian alone places it above clothing.

usage: python benchmarks/tilt_density_ranking.py RUN [--steps 2000] [--rank-weight 0.1] [--margin 10]
                                                 [--negatives rotate+swap+jigsaw]
e.g.   jemkit train --preset fmnist-jem-tilt --set data.outliers=generated:patches+shapes+spectral \\
           --set oe.margins=fixed --set oe.m_in=-40 --set oe.m_out=60 --set oe.weight=0.01 --out runs/tilt-oe
       python benchmarks/tilt_density_ranking.py runs/tilt-oe
"""
from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from jemkit.checkpoint import load
from jemkit.data import dataset_of
from jemkit.data.base import uint8_to_unit
from jemkit.data.negatives import negative_augment, parse_negatives
from jemkit.data.ood import ood_sets
from jemkit.data.outliers import generated_outliers
from jemkit.evaluation.ood import auroc
from jemkit.objectives.tilt import tilted_likelihood_term
from jemkit.sampling.gaussian import RidgedGaussian


def energies(net, x, batch=500):
    with torch.no_grad():
        return torch.cat([-torch.logsumexp(net(x[i:i + batch]), 1) for i in range(0, len(x), batch)])


def report(tag, net, base, x_test, sets):
    """AUROC of log N − E per set, IS log Z and the gain over the Gaussian (nats per test image)."""
    net.eval()
    e_test = energies(net, x_test)
    lp_test = base.log_prob(x_test) - e_test
    aurocs = {k: auroc(lp_test, base.log_prob(v) - energies(net, v)) for k, v in sets.items()}
    e_base = energies(net, base.sample(10_000, tuple(x_test.shape[1:]), generator=torch.Generator().manual_seed(5)))
    log_z = (torch.logsumexp(-e_base, 0) - math.log(len(e_base))).item()
    ess = (1 / torch.softmax(-e_base, 0).pow(2).sum()).item()
    print(f"{tag}: AUROC of log p " + " ".join(f"{k} {v:.3f}" for k, v in aurocs.items())
          + f" | IS log Z {log_z:.1f} (ESS {ess:.1f}), gain over N {-e_test.mean().item() - log_z:.1f} nats", flush=True)
    net.train()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run (or checkpoint) of train.objective=tilt")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rank-weight", type=float, default=0.1)
    p.add_argument("--margin", type=float, default=10.0, help="m of the ranking hinge, in nats")
    p.add_argument("--negatives", default="rotate+swap+jigsaw", help="negative augmentation kinds joined by +, or 'none'")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.manual_seed(a.seed)
    net = load(a.run)
    if net.record.get("objective") != "tilt":
        raise SystemExit(f"{a.run} is not a tilted model (objective '{net.record.get('objective')}')")
    data = dataset_of(net.record)
    base = RidgedGaussian.fit(data.x_train)
    shape = tuple(data.x_train.shape[1:])
    outliers = uint8_to_unit(generated_outliers("patches+shapes+spectral", shape))
    kinds = [] if a.negatives == "none" else parse_negatives(a.negatives)
    sets = {k: v[:2000] for k, v in ood_sets(data, 2000, torch.Generator().manual_seed(1)).items()}
    x_test = data.x_test[:2000]
    med = base.log_prob(x_test).median()
    print("median log N(x) − test's: " + " ".join(f"{k} {(base.log_prob(v).median() - med).item():+.0f}" for k, v in
                                                 {**sets, "outliers": outliers[:2000]}.items()), flush=True)
    report("start", net, base, x_test, sets)

    g = torch.Generator().manual_seed(a.seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    t0 = time.time()
    for step in range(1, a.steps + 1):
        idx = torch.randint(len(data.x_train), (64,), generator=g)
        x, y = data.x_train[idx], data.y_train[idx]
        x = (x + 0.03 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
        x_base = base.sample(128, shape, generator=g)
        x_out = torch.cat([outliers[torch.randint(len(outliers), (64,), generator=g)]]
                          + ([negative_augment(x, kinds, g)] if kinds else []))
        logits = net(torch.cat([x, x_base, x_out]))
        e = -torch.logsumexp(logits, 1)
        e_in, e_base, e_out = e[:64], e[64:192], e[192:]
        px, _ = tilted_likelihood_term(e_in, e_base, 0.01)
        hinge = (e_in + 40).relu().square().mean() + (60 - e_out[:64]).relu().square().mean()
        gap = a.margin + (base.log_prob(x_out) - e_out)[None, :] - (base.log_prob(x) - e_in).detach()[:, None]
        rank = gap.relu().mean()
        loss = F.cross_entropy(logits[:64], y) + 0.1 * px + 0.01 * hinge + a.rank_weight * rank
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0:
            print(f"step {step}: ranking loss {rank.item():.2f}, active pairs {(gap > 0).float().mean().item():.3f}, "
                  f"E in {e_in.mean().item():.1f} out {e_out.mean().item():.1f} ({time.time() - t0:.0f} s)", flush=True)
        if step % a.eval_every == 0 or step == a.steps:
            report(f"step {step}", net, base, x_test, sets)


if __name__ == "__main__":
    main()
