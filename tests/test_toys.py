"""2-D toy datasets: shapes, ranges, determinism, and the sample-quality measures."""
import pytest
import torch

from jemkit.config import TOY_DATASETS
from jemkit.data import load_dataset
from jemkit.data.toys import TOYS, eight_gaussian_centres, energy_distance, mode_coverage


def test_registry_matches_config():
    assert set(TOYS) == set(TOY_DATASETS)


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_shapes_range_and_determinism(name):
    d = load_dataset(name, split_seed=3)
    assert d.x_train.shape == (10000, 2) and d.x_test.shape == (2000, 2) and d.shape == (2,)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.x_train.abs().max() < 1.2 and d.x_train.std(0).min() > 0.2  # about [-1, 1], not collapsed
    assert set(d.y_train.unique().tolist()) == set(range(d.num_classes))
    again = load_dataset(name, split_seed=3)
    assert torch.equal(d.x_train, again.x_train) and torch.equal(d.x_test, again.x_test)
    assert not torch.equal(d.x_train[:2000], d.x_test)  # the test set is an independent draw
    assert not torch.equal(load_dataset(name, split_seed=4).x_train, d.x_train)


def test_eight_gaussians_and_rings_geometry():
    d = load_dataset("8gaussians")
    centres = eight_gaussian_centres()
    assert torch.allclose(centres.norm(dim=1), torch.full((8,), 0.8))
    offsets = d.x_train - centres[d.y_train]
    assert offsets.std().item() == pytest.approx(0.05, rel=0.05)
    r = load_dataset("rings")
    radius = r.x_train.norm(dim=1)
    for k, expected in enumerate((0.225, 0.45, 0.675, 0.9)):
        assert radius[r.y_train == k].mean().item() == pytest.approx(expected, abs=0.01)


def test_quality_measures_separate_good_from_bad_samples():
    d = load_dataset("8gaussians")
    good = mode_coverage(d.x_test)
    assert good["modes_covered"] == 8 and good["within_2std"] == pytest.approx(0.865, abs=0.03)  # 1 − e⁻² in 2-D
    collapsed = eight_gaussian_centres()[torch.zeros(500, dtype=torch.long)] + 0.01 * torch.randn(500, 2)
    bad = mode_coverage(collapsed)
    assert bad["modes_covered"] == 1 and bad["max_mode_share"] == 1.0
    assert energy_distance(d.x_train[:2000], d.x_test) < 0.005 < energy_distance(collapsed, d.x_test)
    assert energy_distance(d.x_test, d.x_test) == pytest.approx(0.0, abs=1e-12)


def test_point_data_are_validated():
    from jemkit.data import ImageData

    bad = ImageData("pts", torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.zeros(3, 3),
                    torch.zeros(3, dtype=torch.long), 1, ["a"])
    with pytest.raises(ValueError, match="same shape"):
        bad.validate()
