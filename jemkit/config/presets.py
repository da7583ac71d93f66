"""Presets: YAML files inside the package (``jemkit/presets/*.yaml``), partial dicts over the defaults."""
from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import yaml

from ..utils import closest
from .checks import validate
from .overrides import _merge, apply_overrides, config_from_dict
from .schema import Config, ConfigError


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("jemkit.presets").iterdir() if p.name.endswith(".yaml"))


def preset_description(name: str) -> str:
    text = resources.files("jemkit.presets").joinpath(f"{name}.yaml").read_text()
    first = text.splitlines()[0] if text else ""
    return first.lstrip("# ").strip()


def load_preset(name: str, overrides: list[str] = ()) -> Config:
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset '{name}'{closest(name, names)}; available: {', '.join(names)}")
    d = yaml.safe_load(resources.files("jemkit.presets").joinpath(f"{name}.yaml").read_text()) or {}
    cfg = _merge(Config(), d)
    cfg = dataclasses.replace(cfg, preset=name)
    return validate(apply_overrides(cfg, list(overrides)))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def load_config(path: str | Path) -> Config:
    return config_from_dict(yaml.safe_load(Path(path).read_text()) or {})
