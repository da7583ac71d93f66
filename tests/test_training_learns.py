"""A tiny JEM learns on the embedded digits in 100 steps: test images get lower energy than uniform
noise, and fresh class-conditional chains (the training sampler on E(x, y) from the training init)
end as images the classifier assigns to their class, well above chance."""
import torch

import jemkit
from jemkit.config import load_preset
from jemkit.data import load_dataset
from jemkit.energy import ClassifierEnergy
from jemkit.sampling import init_from_record, sampler_from_record
from jemkit.training import train

SETS = ["train.steps=100", "optim.warmup=0", "optim.lr=0.003", "model.width=16", "sampler.steps=10", "buffer.size=500",
        "train.log_every=50", "train.eval_every=100", "train.sample_every=100", "train.tensorboard=false"]


def test_tiny_jem_learns_energy_and_class_conditional_samples(tmp_path):
    result = train(load_preset("digits-jem", SETS), tmp_path / "run", progress=False)
    assert result.test_accuracy > 0.3  # chance is 0.1
    model, data = jemkit.load(result.run_dir), load_dataset("digits")
    energy, g = ClassifierEnergy(model), torch.Generator().manual_seed(0)
    noise = torch.rand(len(data.x_test), *data.shape, generator=g) * 2 - 1
    with torch.no_grad():
        e_test, e_noise = energy(data.x_test).mean().item(), energy(noise).mean().item()
    assert e_test < e_noise, (e_test, e_noise)

    per_class, k = 20, data.num_classes
    y = torch.arange(k).repeat_interleave(per_class)
    x0 = init_from_record(model.record, data.x_train, data.y_train)(len(y), data.shape, y=y, generator=g)
    x = sampler_from_record(model.record)(energy, x0, y=y, generator=g)
    with torch.no_grad():
        hits = (model(x).argmax(1) == y).float().mean().item()
    assert hits > 1 / k + 0.3, f"class-conditional samples classified as their class: {hits:.2f} (chance {1 / k:.2f})"
