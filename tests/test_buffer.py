"""ReplayBuffer: reinit fraction, class segments, write-back, state_dict round trip."""
import pytest
import torch

from jemkit.sampling import ReplayBuffer


def test_init_is_uniform_in_range():
    buf = ReplayBuffer(5000, (1, 4, 4), generator=torch.Generator().manual_seed(0))
    assert buf.x.shape == (5000, 1, 4, 4)
    assert buf.x.min() >= -1 and buf.x.max() <= 1
    assert abs(buf.x.mean().item()) < 0.02 and abs(buf.x.var().item() - 1 / 3) < 0.01


@pytest.mark.parametrize("reinit", [0.0, 0.05, 0.3, 1.0])
def test_reinit_fraction(reinit):
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(1000, (3,), reinit=reinit, generator=g)
    buf.x.fill_(5.0)  # anything not 5 was re-initialized
    fractions = []
    for _ in range(50):
        draw = buf.sample(400, generator=g)
        fresh = (draw.x != 5.0).all(1)
        assert torch.equal(fresh, draw.reinit)
        fractions.append(fresh.float().mean())
    assert abs(torch.stack(fractions).mean().item() - reinit) < 0.01


def test_push_writes_back_to_drawn_slots():
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(100, (2,), reinit=0.0, generator=g)
    before = buf.x.clone()
    draw = buf.sample(10, generator=g)
    assert torch.equal(draw.x, before[draw.index])
    buf.push(draw.x + 10, draw.index)
    touched = torch.zeros(100, dtype=torch.bool)
    touched[draw.index] = True
    assert torch.equal(buf.x[draw.index], before[draw.index] + 10)
    assert torch.equal(buf.x[~touched], before[~touched])


def test_class_segments():
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(100, (2,), num_classes=4, reinit=0.0, generator=g)
    assert buf.segment == 25 and torch.equal(buf.labels, torch.arange(4).repeat_interleave(25))
    y = torch.tensor([0, 1, 2, 3] * 50)
    draw = buf.sample(len(y), y=y, generator=g)
    assert torch.equal(draw.index // 25, y)
    draw = buf.sample(500, generator=g)  # classes drawn by the buffer when not given
    assert torch.equal(buf.labels[draw.index], draw.y) and set(draw.y.tolist()) == {0, 1, 2, 3}


def test_state_dict_round_trip():
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(50, (1, 2, 2), num_classes=5, reinit=0.2, generator=g)
    buf.push(torch.ones(3, 1, 2, 2), torch.tensor([0, 7, 49]))
    other = ReplayBuffer(50, (1, 2, 2), num_classes=5, reinit=0.9)
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.x, buf.x) and other.reinit == 0.2
    a = buf.sample(8, generator=torch.Generator().manual_seed(3))
    b = other.sample(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.x, b.x) and torch.equal(a.index, b.index)
    with pytest.raises(ValueError, match="chain shape"):
        ReplayBuffer(50, (4,), num_classes=5).load_state_dict(buf.state_dict())


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0}, "size"), ({"reinit": 1.5}, "reinit"), ({"reinit": -0.1}, "reinit"),
    ({"num_classes": 3}, "multiple"),
])
def test_invalid_arguments(kwargs, match):
    args = {"size": 10, "shape": (2,)} | kwargs
    with pytest.raises(ValueError, match=match):
        ReplayBuffer(**args)


def test_unconditional_buffer_rejects_labels():
    with pytest.raises(ValueError, match="unconditional"):
        ReplayBuffer(10, (2,)).sample(2, y=torch.tensor([0, 1]))
