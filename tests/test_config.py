import pytest

from jemkit.config import ConfigError, apply_overrides, load_preset, preset_names, Config


def test_presets_exist_and_load():
    names = preset_names()
    for required in ["digits-jem", "digits-baseline", "fmnist-jem", "fmnist-baseline"]:
        assert required in names
    for name in names:
        cfg = load_preset(name)
        assert cfg.preset == name and cfg.train.objective in {"jem", "ebm", "ce", "ncsn", "dsm", "energy_oe", "tilt"}


def test_overrides_are_typed():
    cfg = apply_overrides(Config(), ["optim.lr=3e-4", "train.steps=10", "data.root=/x", "optim.decay_at=[0.5, 0.8]",
                                     "sampler.eval_mode=false", "data.root=none"])
    assert cfg.optim.lr == 3e-4 and cfg.train.steps == 10 and cfg.optim.decay_at == [0.5, 0.8]
    assert cfg.sampler.eval_mode is False and cfg.data.root is None


@pytest.mark.parametrize("override, match", [
    ("optim.lrr=1", "did you mean 'lr'"),
    ("train.steps=abc", "integer"),
    ("train.steps=1.5", "integer"),
    ("sampler.eval_mode=3", "true or false"),
    ("optim=3", "mapping"),
    ("noequals", "key.sub=value"),
])
def test_bad_overrides(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), [override])


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="did you mean 'digits-jem'"):
        load_preset("digits-jm")
