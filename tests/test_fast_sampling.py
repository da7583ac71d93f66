"""The sampler's fast paths: no host sync inside the loop, torch.compile (equivalent, with an eager
fallback), bf16 + channels-last within a stated tolerance of float32, and CUDA graphs (refused on CPU;
checked against the eager loop where a GPU is present)."""
import logging

import pytest
import torch

from jemkit.config import SamplerConfig, TrainConfig
from jemkit.energy import ClassifierEnergy
from jemkit.model import Classifier
from jemkit.nets import build_net
from jemkit.sampling import ReplayBuffer, compiled, sgld
from jemkit.sampling import make_sampler
from jemkit.training.steps import jem_step


def cnn_energy(seed=0, shape=(1, 12, 12)):
    """A small JEM energy as the trainer builds it (Classifier over the CNN, input check off)."""
    torch.manual_seed(seed)
    model = Classifier(build_net("cnn", shape[0], 10, width=4, head_grid=3), shape, 10)
    model.check_finite = False
    return ClassifierEnergy(model)


@pytest.fixture
def count_syncs(monkeypatch):
    """Counts the calls that move a tensor value to the host (.item, bool, float, int, tolist)."""
    calls = []
    for name in ("item", "__bool__", "__float__", "__int__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def test_sampling_loop_never_syncs_with_the_host(count_syncs):
    energy, x = cnn_energy(), torch.rand(8, 1, 12, 12) * 2 - 1
    counts = []
    for steps in (1, 6):
        count_syncs.clear()
        sgld(energy, x, steps=steps, generator=torch.Generator().manual_seed(0), callback=lambda info: None)
        counts.append(len(count_syncs))
    assert counts[0] == counts[1] <= 1, count_syncs  # the one non-finite check after the last step


def test_jem_training_step_syncs_once(count_syncs):
    """jem_step (buffer draw, SGLD, push, one shared forward for CE and E(x_data)) syncs once, for any steps."""
    energy = cnn_energy()
    buffer = ReplayBuffer(50, (1, 12, 12), generator=torch.Generator().manual_seed(0))
    x, y = torch.rand(8, 1, 12, 12) * 2 - 1, torch.randint(0, 10, (8,))
    for steps in (1, 5):
        count_syncs.clear()
        out = jem_step(energy, x, y, sampler=make_sampler(SamplerConfig(steps=steps)), buffer=buffer, train=TrainConfig(),
                       generator=torch.Generator().manual_seed(0))
        out.loss.backward()
        assert len(count_syncs) == 1, count_syncs


def test_compiled_step_matches_eager(monkeypatch):
    """torch.compile traces the energy-gradient step (aot_eager here: Dynamo + AOTAutograd, no C++ compiler
    needed, seconds); the chain is the eager one to float32 rounding, with and without bf16 autocast."""
    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")
    energy, x = cnn_energy(1), torch.rand(8, 1, 12, 12) * 2 - 1
    for dtype in (None, torch.bfloat16):
        run = lambda c: sgld(energy, x, steps=4, generator=torch.Generator().manual_seed(0), autocast_dtype=dtype, compile=c)
        eager, comp = run(False), run(True)
        assert torch.allclose(comp, eager, atol=1e-4), (comp - eager).abs().max()
    assert energy not in compiled._failed


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch, caplog):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(compiled, "BACKEND", broken_backend)
    energy, x = cnn_energy(2), torch.rand(4, 1, 12, 12) * 2 - 1
    run = lambda c: sgld(energy, x, steps=3, generator=torch.Generator().manual_seed(0), compile=c)
    with caplog.at_level(logging.WARNING, logger="jemkit"):
        first, second = run(True), run(True)
    warnings = [r for r in caplog.records if "sampler.compile" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler here" in warnings[0].getMessage()
    assert torch.equal(first, run(False)) and torch.equal(second, first)


def test_compile_fallback_still_raises_the_energy_own_errors(monkeypatch):
    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")
    energy = cnn_energy(3)
    with pytest.raises(ValueError, match="expected images of shape"):
        sgld(energy, torch.rand(4, 1, 10, 10), steps=2, compile=True)


def test_bf16_channels_last_sampling_matches_float32():
    """bf16 autocast and channels-last change the arithmetic, not the samples: with JEM's settings (20 steps,
    step 1, noise 0.01) the mean energy of the samples is within 2% of the float32 descent E(x0) − E(x32)."""
    energy, x0 = cnn_energy(4), torch.rand(32, 1, 12, 12) * 2 - 1
    with torch.no_grad():
        energy.net.net.head.weight.mul_(100)  # an untrained net's energy is nearly flat: make the chains move
    run = lambda dtype, fmt: sgld(energy, x0.contiguous(memory_format=fmt), steps=20,
                                  generator=torch.Generator().manual_seed(0), autocast_dtype=dtype)
    energy.to(memory_format=torch.channels_last)
    x16 = run(torch.bfloat16, torch.channels_last)
    energy.to(memory_format=torch.contiguous_format)
    x32 = run(None, torch.contiguous_format)
    with torch.no_grad():
        e0, e32, e16 = (energy(x.contiguous()).mean().item() for x in (x0, x32, x16))
    assert e32 < e0 - 0.01  # the chains descend
    assert abs(e16 - e32) <= 0.02 * (e0 - e32)


def test_make_sampler_passes_compile_and_cuda_graph():
    sampler = make_sampler(SamplerConfig(compile=True, cuda_graph=True))
    assert sampler.keywords["compile"] and sampler.keywords["cuda_graph"]
    assert "compile" not in make_sampler(SamplerConfig()).keywords  # off by default: the eager loop
    with pytest.raises(ValueError, match="not mala"):
        make_sampler(SamplerConfig(name="mala", compile=True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA chains")
def test_cuda_graph_is_refused_on_cpu():
    with pytest.raises(ValueError, match="needs the chains on a CUDA device"):
        sgld(cnn_energy(), torch.rand(2, 1, 12, 12), steps=2, cuda_graph=True)
    with pytest.raises(ValueError, match="needs the chains on a CUDA device"):
        make_sampler(SamplerConfig(cuda_graph=True))(cnn_energy(), torch.rand(2, 1, 12, 12))


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")


@needs_cuda
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_cuda_graph_chain_matches_eager(dtype):
    """Same generator, same noise: replaying the captured step gives the eager chain (to rounding)."""
    energy = cnn_energy(5).cuda()
    x0 = torch.rand(16, 1, 12, 12, device="cuda") * 2 - 1
    seen = []
    run = lambda graph, cb=None: sgld(energy, x0, steps=6, generator=torch.Generator("cuda").manual_seed(0),
                                      autocast_dtype=dtype, cuda_graph=graph, callback=cb)
    eager = run(False)
    graphed = run(True, cb=lambda info: seen.append(info["energy"]))
    again = run(True)  # the cached graph
    assert len(seen) == 6 and seen[0].shape == (16,)
    tol = 1e-4 if dtype is None else 2e-2
    assert torch.allclose(graphed, eager, atol=tol) and torch.allclose(again, graphed, atol=tol)


@needs_cuda
def test_cuda_graph_follows_parameter_updates_and_replacement():
    energy = cnn_energy(6).cuda()
    x0 = torch.rand(8, 1, 12, 12, device="cuda") * 2 - 1
    run = lambda graph: sgld(energy, x0, steps=3, noise=0.0, cuda_graph=graph)
    run(True)
    with torch.no_grad():
        for p in energy.parameters():
            p.mul_(1.5)  # in place, as an optimizer step
    assert torch.allclose(run(True), run(False), atol=1e-4)
    energy.net.net.head.weight = torch.nn.Parameter(energy.net.net.head.weight.detach() * 2)  # replaced tensor
    assert torch.allclose(run(True), run(False), atol=1e-4)


@needs_cuda
def test_cuda_graph_falls_back_when_the_energy_syncs(caplog):
    class Syncing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 1)

        def forward(self, x, y=None):
            e = self.lin(x).squeeze(1)
            return e * 2 if e.sum() > 0 else e  # `if tensor` syncs with the host: cannot be captured

    energy, x0 = Syncing().cuda(), torch.randn(4, 6, device="cuda")
    with caplog.at_level(logging.WARNING, logger="jemkit"):
        out = sgld(energy, x0, steps=3, generator=torch.Generator("cuda").manual_seed(0), cuda_graph=True)
    assert any("sampler.cuda_graph" in r.getMessage() for r in caplog.records)
    assert torch.equal(out, sgld(energy, x0, steps=3, generator=torch.Generator("cuda").manual_seed(0)))


@pytest.mark.slow
def test_bf16_channels_last_training_matches_float32(tmp_path):
    """The same tiny digits JEM trained with sampler.bf16 + train.channels_last and in float32: test accuracy
    within 0.1 and the mean energies of data and samples over the last 30 steps within 10% of each other."""
    from conftest import TINY_JEM
    from jemkit.config import load_preset
    from jemkit.training import train

    results = {}
    for name, extra in (("fp32", []), ("bf16", ["sampler.bf16=true", "train.channels_last=true"])):
        stats = []
        r = train(load_preset("digits-jem", TINY_JEM + ["train.steps=100", "train.eval_every=100", *extra]),
                  tmp_path / name, progress=False, on_step=lambda step, s: stats.append(s))
        tail = stats[-30:]
        results[name] = (r.test_accuracy, *(torch.stack([s[k] for s in tail]).mean().item() for k in ("e_data", "e_sample")))
    (acc32, data32, sample32), (acc16, data16, sample16) = results["fp32"], results["bf16"]
    assert abs(acc16 - acc32) <= 0.1, results
    for a, b in ((data16, data32), (sample16, sample32)):
        assert abs(a - b) <= 0.1 * abs(b) + 0.05, results
