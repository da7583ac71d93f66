"""Training-time augmentation (data.augment): each kind makes what it says, labels stay, the stream stays resumable."""
import pytest
import torch

from jemkit.config import ConfigError, load_preset
from jemkit.data import BatchStream
from jemkit.data.augment import augment_batch, parse_augment, shift_images


def test_mirror_flips_about_half_of_the_images_left_right():
    x = torch.randn(200, 1, 6, 6)
    out = augment_batch(x, ["mirror"], 2, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and 70 < int(mirrored.sum()) < 130


def test_shift_moves_the_content_and_pads_by_reflection():
    x = torch.zeros(3, 1, 8, 8)
    x[:, 0, 4, 4] = 1.0  # one bright pixel, away from the border
    out = shift_images(x, torch.tensor([0, 2, -1]), torch.tensor([0, -2, 1]), 2)
    assert torch.equal(out[0], x[0])
    assert out[1, 0, 2, 6] == 1 and out[1].sum() == 1  # crop offset (+2, −2): the pixel moves up 2, right 2
    assert out[2, 0, 5, 3] == 1 and out[2].sum() == 1
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    assert ramp.flip(-1)[0, 0, 0, 0] == 7 and shift_images(ramp, torch.tensor([0]), torch.tensor([-2]), 2)[0, 0, 0, :3].tolist() == [2, 1, 0]
    g = torch.Generator().manual_seed(1)
    moved = augment_batch(x.repeat(50, 1, 1, 1), ["shift"], 2, g)
    assert moved.shape == (150, 1, 8, 8) and moved.flatten(1).sum(1).eq(1).all()  # the pixel stays inside: 2 < 4
    assert len({tuple(p.tolist()) for p in (moved[:, 0] == 1).nonzero()[:, 1:]}) == 25  # every offset in [−2, 2]²


def test_augmented_stream_keeps_labels_and_resumes():
    x = torch.randn(12, 1, 6, 6)
    y = torch.arange(12)
    a = BatchStream(x, y, 4, seed=3, input_noise=0.0, augment="mirror+shift", shift=1)
    plain = BatchStream(x, y, 4, seed=3)
    batches = [next(a) for _ in range(3)]
    assert any(not torch.equal(xb, next(plain)[0]) for xb, _ in batches)  # augmented
    for xb, yb in batches:  # each image is a mirrored and/or shifted copy of its own labelled image
        for img, label in zip(xb, yb):
            candidates = [shift_images(v.unsqueeze(0), torch.tensor([dy]), torch.tensor([dx]), 1)[0]
                          for v in (x[label], x[label].flip(-1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            assert any(torch.equal(img, c) for c in candidates)
    resumed = BatchStream(x, y, 4, seed=3, augment="mirror+shift", shift=1)
    resumed.load_state_dict(a.state_dict())
    for _ in range(4):
        (xa, ya), (xr, yr) = next(a), next(resumed)
        assert torch.equal(xa, xr) and torch.equal(ya, yr)


def test_bad_augment_is_refused():
    assert parse_augment("") == [] and parse_augment("shift+mirror") == ["shift", "mirror"]
    with pytest.raises(ValueError, match="kinds joined by"):
        parse_augment("mirror+crop")
    with pytest.raises(ValueError, match="below the image size"):
        augment_batch(torch.zeros(2, 1, 4, 4), ["shift"], 4, torch.Generator())
    with pytest.raises(ConfigError, match="data.augment must be"):
        load_preset("digits-jem", ["data.augment=mirror+mirror"])
    with pytest.raises(ConfigError, match="data.shift must be"):
        load_preset("digits-jem", ["data.augment=shift", "data.shift=-1"])
    with pytest.raises(ConfigError, match="2-D points"):
        load_preset("toy-dsm", ["data.augment=mirror"])


def test_augmented_training_and_ranked_negatives_resume_bitwise(tmp_path):
    """A run with data.augment (and the EBM's ranked negatives) killed past its last checkpoint and resumed ends
    with the weights of the run that was never stopped."""
    from test_training_levers import TINY, resume_after_interrupt, same_final_weights

    from jemkit.training import train

    sets = [*TINY, "train.steps=8", "train.checkpoint_every=4", "train.log_every=4", "train.eval_every=4",
            "data.augment=mirror+shift", "data.shift=1", "train.objective=ebm", "train.negatives=rotate+mix",
            "train.negatives_loss=rank", "train.negatives_per_image=2"]
    train(load_preset("digits-jem", sets), tmp_path / "ref", progress=False)
    resume_after_interrupt(load_preset("digits-jem", sets), tmp_path / "run", at=6)
    assert same_final_weights(tmp_path / "ref", tmp_path / "run")
    train(load_preset("digits-jem", [s for s in sets if not s.startswith("data.")]), tmp_path / "plain", progress=False)
    assert not same_final_weights(tmp_path / "ref", tmp_path / "plain")  # the augmentation changed the training
