"""Negative data augmentation (train.negatives): each kind makes what it says, and the EBM step takes them as negatives."""
import pytest
import torch

from jemkit.config import ConfigError, load_preset
from jemkit.data import negative_augment, parse_negatives
from jemkit.training import train


def images(n=6, side=6):
    return torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_each_kind_transforms_every_image_as_named():
    x = images()
    g = lambda: torch.Generator().manual_seed(1)
    turned = negative_augment(x, ["rotate"], g())
    assert all(any(torch.equal(turned[i], torch.rot90(x[i], k, (1, 2))) for k in (1, 2, 3)) for i in range(len(x)))
    assert torch.equal(negative_augment(x, ["flip"], g()), x.flip(-2))
    swapped = negative_augment(x, ["swap"], g())
    for i in range(len(x)):
        assert torch.equal(swapped[i], torch.cat([x[i, :, 3:], x[i, :, :3]], 1)) or \
            torch.equal(swapped[i], torch.cat([x[i, ..., 3:], x[i, ..., :3]], 2))
    mixed = negative_augment(x, ["mix"], g())
    for i in range(len(x)):  # one half kept, the other from another image of the batch (never itself)
        top, left = torch.equal(mixed[i, :, :3], x[i, :, :3]), torch.equal(mixed[i, ..., :3], x[i, ..., :3])
        assert top or left
        rest = mixed[i, :, 3:] if top else mixed[i, ..., 3:]
        others = [x[j, :, 3:] if top else x[j, ..., 3:] for j in range(len(x)) if j != i]
        assert any(torch.equal(rest, o) for o in others)
    jig = negative_augment(x, ["jigsaw"], g())
    for i in range(len(x)):  # the same four quadrants, not in their own order
        quads = lambda im: [im[:, :3, :3], im[:, :3, 3:], im[:, 3:, :3], im[:, 3:, 3:]]
        got, own = quads(jig[i]), quads(x[i])
        assert sorted(next(k for k in range(4) if torch.equal(q, own[k])) for q in got) == [0, 1, 2, 3]
        assert not torch.equal(jig[i], x[i])
    # the same generator draws the same negatives; all four kinds together change every image
    both = negative_augment(x, list(parse_negatives("rotate+flip+swap+mix")), g())
    assert torch.equal(both, negative_augment(x, ["rotate", "flip", "swap", "mix"], g()))
    assert (both != x).flatten(1).any(1).all()


def test_bad_negatives_are_refused():
    with pytest.raises(ValueError, match="kinds joined by"):
        parse_negatives("rotate+spin")
    with pytest.raises(ValueError, match="square"):
        negative_augment(torch.zeros(2, 1, 4, 6), ["rotate"])
    with pytest.raises(ValueError, match="two images"):
        negative_augment(torch.zeros(1, 1, 4, 4), ["mix"])
    with pytest.raises(ValueError, match="even image sizes"):
        negative_augment(torch.zeros(2, 1, 5, 4), ["jigsaw"])
    with pytest.raises(ConfigError, match="set train.objective=ebm or jem"):
        load_preset("digits-jem", ["train.objective=ce", "train.negatives=flip"])
    with pytest.raises(ConfigError, match="each once"):
        load_preset("digits-jem", ["train.objective=ebm", "train.negatives=flip+flip"])


def test_ebm_step_contrasts_the_data_with_chains_and_negatives(tmp_path, monkeypatch):
    sets = ["model.width=8", "optim.warmup=0", "buffer.size=100", "sampler.steps=2", "data.batch_size=16", "train.steps=3",
            "train.log_every=1", "train.eval_every=3", "train.tensorboard=false", "train.sample_every=1000",
            "train.objective=ebm", "train.negatives=rotate+flip+swap+mix"]
    import jemkit.training.steps as steps

    seen, original = [], steps.contrastive_divergence
    monkeypatch.setattr(steps, "contrastive_divergence",
                        lambda energy, x, neg, **kw: seen.append((len(x), len(neg))) or original(energy, x, neg, **kw))
    train(load_preset("digits-jem", sets), tmp_path / "run", progress=False)
    assert seen == [(16, 32)] * 3  # 16 chains' samples and 16 negatives per batch of 16


def test_jem_step_takes_negatives_of_its_log_px_batch(tmp_path, monkeypatch):
    """Semi-supervised JEM: the negatives are made from the unlabeled batch that feeds log p(x)."""
    import jemkit.training.steps as steps

    seen, original = [], steps.jem_hybrid
    monkeypatch.setattr(steps, "jem_hybrid",
                        lambda energy, x, y, x_sampled, **kw: seen.append(len(x_sampled)) or original(energy, x, y, x_sampled, **kw))
    sets = ["model.width=8", "optim.warmup=0", "buffer.size=100", "sampler.steps=2", "data.batch_size=16", "train.steps=2",
            "train.sample_batch=16", "train.eval_every=2", "train.tensorboard=false", "train.sample_every=1000",
            "data.labels_per_class=5", "train.negatives=flip"]
    train(load_preset("digits-jem", sets), tmp_path / "run", progress=False)
    assert seen == [32, 32]


def test_ranked_negatives_is_cross_entropy_of_the_image_among_its_negatives():
    from jemkit.objectives import ranked_negatives

    e_data, e_neg = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([[1.0, 0.0, 3.0]])
    loss, acc = ranked_negatives(e_data, e_neg)  # one negative each: softplus(E(x) − E(x̃))
    assert torch.allclose(loss, torch.nn.functional.softplus(e_data - e_neg[0]).mean())
    assert acc.item() == pytest.approx(2 / 3)  # the second image sits above its negative
    e_neg = torch.randn(4, 3)
    loss, _ = ranked_negatives(e_data, e_neg)
    logits = -torch.cat([e_data.unsqueeze(0), e_neg]).T  # (B, K + 1), the image first
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits, torch.zeros(3, dtype=torch.long)))
    # pairs already far apart in the right order give (almost) no gradient; the wrong-way pair takes it
    e_data = torch.tensor([-10.0, 5.0], requires_grad=True)
    ranked_negatives(e_data, torch.tensor([[10.0, 0.0]]))[0].backward()
    assert abs(e_data.grad[0].item()) < 1e-8 and e_data.grad[1].item() > 0.49
    with pytest.raises(ValueError, match="must be"):
        ranked_negatives(torch.zeros(3), torch.zeros(3))


def test_ebm_step_ranks_each_image_against_its_own_negatives(tmp_path, monkeypatch):
    """negatives_loss=rank: the chains' contrast sees only the chains' samples, the ranking term K negatives per
    image; negatives_per_image=K in the contrastive mode adds K·B negatives to the chains' samples."""
    import csv

    import jemkit.training.steps as steps

    sets = ["model.width=8", "optim.warmup=0", "buffer.size=100", "sampler.steps=2", "data.batch_size=16", "train.steps=2",
            "train.log_every=1", "train.eval_every=2", "train.tensorboard=false", "train.sample_every=1000",
            "train.objective=ebm", "train.negatives=rotate+flip", "train.negatives_per_image=3"]
    seen, original = [], steps.contrastive_divergence
    monkeypatch.setattr(steps, "contrastive_divergence",
                        lambda energy, x, neg, **kw: seen.append((len(x), len(neg))) or original(energy, x, neg, **kw))
    train(load_preset("digits-jem", sets), tmp_path / "contrastive", progress=False)
    assert seen == [(16, 64)] * 2  # 16 chains' samples and 3 × 16 negatives

    ranked, original_rank = [], steps.ranked_negatives
    monkeypatch.setattr(steps, "ranked_negatives",
                        lambda e, e_neg: ranked.append(tuple(e_neg.shape)) or original_rank(e, e_neg))
    train(load_preset("digits-jem", sets + ["train.negatives_loss=rank"]), tmp_path / "rank", progress=False)
    assert ranked == [(3, 16)] * 2 and len(seen) == 2  # the contrastive path did not run
    with open(tmp_path / "rank" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(0 <= float(r["rank_acc"]) <= 1 and float(r["rank_loss"]) > 0 for r in rows if r["rank_loss"])
    assert sum(bool(r["rank_loss"]) for r in rows) == 2


def test_negatives_options_are_checked():
    with pytest.raises(ConfigError, match="set train.negatives"):
        load_preset("digits-jem", ["train.objective=ebm", "train.negatives_loss=rank"])
    with pytest.raises(ConfigError, match="implemented for train.objective=ebm"):
        load_preset("digits-jem", ["train.negatives=flip", "train.negatives_loss=rank"])
    with pytest.raises(ConfigError, match="contrastive or rank"):
        load_preset("digits-jem", ["train.objective=ebm", "train.negatives=flip", "train.negatives_loss=nce"])
    with pytest.raises(ConfigError, match="integer >= 1"):
        load_preset("digits-jem", ["train.objective=ebm", "train.negatives=flip", "train.negatives_per_image=0"])
