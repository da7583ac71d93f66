"""Property-based tests (hypothesis) over sampler and buffer arguments."""
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from jemkit.sampling import SAMPLERS, ReplayBuffer

from conftest import GaussianEnergy

FAST = settings(max_examples=60, deadline=None)


@FAST
@given(
    name=st.sampled_from(sorted(SAMPLERS)),
    steps=st.integers(0, 4),
    step_size=st.floats(0.0, 0.5),
    batch=st.integers(1, 5),
    dim=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_sampler_properties(name, steps, step_size, batch, dim, seed, dtype):
    assume(name != "mala" or step_size > 0 or steps == 0)  # MALA needs step_size > 0 when it takes steps
    energy = GaussianEnergy(torch.zeros(dim, dtype=dtype), torch.eye(dim, dtype=dtype))
    x0 = torch.randn(batch, dim, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    x0_copy = x0.clone()
    run = lambda: SAMPLERS[name](energy, x0, steps=steps, step_size=step_size, generator=torch.Generator().manual_seed(seed))
    out = run()
    assert out.shape == x0.shape and out.dtype == dtype and torch.isfinite(out).all()
    assert torch.equal(out, run())
    assert torch.equal(x0, x0_copy)
    if steps == 0:
        assert torch.equal(out, x0)


@FAST
@given(name=st.sampled_from(sorted(SAMPLERS)), steps=st.integers(-5, -1), step_size=st.floats(-1.0, -1e-6))
def test_sampler_rejects_negative_arguments(name, steps, step_size):
    energy = GaussianEnergy(torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="steps"):
        SAMPLERS[name](energy, torch.zeros(3, 2), steps=steps, step_size=0.1)
    with pytest.raises(ValueError, match="step_size"):
        SAMPLERS[name](energy, torch.zeros(3, 2), steps=1, step_size=step_size)


@FAST
@given(
    classes=st.integers(1, 6),
    per_class=st.integers(1, 20),
    conditional=st.booleans(),
    reinit=st.floats(0.0, 1.0),
    batch=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
)
def test_buffer_properties(classes, per_class, conditional, reinit, batch, seed):
    size = classes * per_class
    g = torch.Generator().manual_seed(seed)
    buf = ReplayBuffer(size, (2,), reinit=reinit, num_classes=classes if conditional else None, generator=g)
    buf.x.fill_(7.0)
    draw = buf.sample(batch, generator=g)
    assert draw.x.shape == (batch, 2) and draw.index.shape == (batch,)
    assert ((0 <= draw.index) & (draw.index < size)).all()
    assert torch.equal(draw.reinit, (draw.x != 7.0).all(1))  # exactly the re-initialized chains are fresh
    assert (draw.x[draw.reinit].abs() <= 1).all()
    if conditional:
        assert torch.equal(draw.index // per_class, draw.y)
    else:
        assert draw.y is None
    buf.push(torch.zeros(batch, 2), draw.index)
    assert (buf.x[draw.index] == 0).all()
    assert int((buf.x == 7.0).all(1).sum()) >= size - batch


@FAST
@given(size=st.integers(-3, 0) | st.integers(1, 50), reinit=st.floats(-2.0, 3.0), classes=st.integers(-1, 7))
def test_buffer_rejects_bad_arguments(size, reinit, classes):
    valid = size > 0 and 0 <= reinit <= 1 and classes > 0 and size % classes == 0
    if valid:
        ReplayBuffer(size, (1,), reinit=reinit, num_classes=classes)
    else:
        with pytest.raises(ValueError):
            ReplayBuffer(size, (1,), reinit=reinit, num_classes=classes)
