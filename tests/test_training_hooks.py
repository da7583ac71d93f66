"""train(callbacks=...): the hooks run in step order, a rolled-back step runs its hooks again, and
configs written while fault injection was a config field (guard.inject_*) still load."""
import yaml
import pytest

from jemkit.config import ConfigError, apply_overrides, config_from_dict, load_preset
from jemkit.objectives import LossOutput
from jemkit.training import Callback, train

SETS = ["train.steps=6", "train.checkpoint_every=2", "model.width=8", "buffer.size=100", "sampler.steps=2",
        "train.log_every=2", "train.eval_every=100", "train.sample_every=100", "train.tensorboard=false"]


class Recorder(Callback):
    """Records every hook call; poisons the loss of step 4 once (a NaN energy)."""

    def __init__(self):
        self.calls, self.poisoned = [], False

    def on_step_start(self, step, optimizer):
        self.calls.append(("start", step))

    def on_loss(self, step, out):
        self.calls.append(("loss", step))
        if step == 4 and not self.poisoned:
            self.poisoned = True
            return LossOutput(out.loss * float("nan"), out.stats)
        return out

    def on_step_end(self, step, stats):
        self.calls.append(("end", step))


def test_hooks_run_in_step_order_and_again_after_a_rollback(tmp_path):
    rec, ends = Recorder(), []
    train(load_preset("digits-jem", SETS), tmp_path / "run", progress=False, callbacks=[rec],
          on_step=lambda step, stats: ends.append((step, sorted(stats))))
    per_step = lambda s: [("start", s), ("loss", s), ("end", s)]  # noqa: E731
    # step 4 diverges: no "end", rolled back to the checkpoint of step 2, steps 3 and 4 run again
    assert rec.calls == [*per_step(1), *per_step(2), *per_step(3), ("start", 4), ("loss", 4),
                         *per_step(3), *per_step(4), *per_step(5), *per_step(6)]
    assert [s for s, _ in ends] == [1, 2, 3, 3, 4, 5, 6] and "e_data" in ends[0][1]
    assert "divergence at step 4: non-finite loss" in (tmp_path / "run" / "events.log").read_text()


def test_configs_with_the_removed_fault_injection_keys_still_load(tmp_path):
    old = load_preset("digits-jem").to_dict()
    old["guard"].update(inject_nan_at=0, inject_lr_mult_at=0, inject_lr_mult=1.0e4)
    assert config_from_dict(old) == load_preset("digits-jem")
    with pytest.raises(ConfigError, match="unknown config key 'guard.inject_nan_at'"):
        apply_overrides(load_preset("digits-jem"), ["guard.inject_nan_at=3"])  # not a setting any more
    with pytest.raises(ConfigError, match="unknown config key 'guard.no_such_key'"):
        config_from_dict(yaml.safe_load("guard: {no_such_key: 1}"))
