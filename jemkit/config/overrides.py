"""YAML values and dotted overrides onto the typed configs: type-checked, with one clear error per bad key."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import fields, is_dataclass

import yaml

from ..utils import closest
from .schema import Config, ConfigError


def _coerce(value, tp, key: str):
    """Check/convert a YAML value to the annotated field type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(v, item, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp in (int, float) and isinstance(value, str):
        try:  # PyYAML reads "3e-4" as a string (YAML 1.1); accept numeric strings for numeric fields
            value = float(value) if tp is float else int(value)
        except ValueError:
            pass
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")


def _merge(obj, updates: dict, prefix: str = ""):
    """Return a copy of dataclass ``obj`` with nested ``updates`` applied and type-checked."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {updates!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in fields(obj)}
    changes = {}
    for key, value in updates.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{prefix}{key}'{closest(key, names)}; valid: {sorted(names)}")
        current = getattr(obj, key)
        if is_dataclass(current):
            changes[key] = _merge(current, value, f"{prefix}{key}.")
        else:
            changes[key] = _coerce(value, hints[key], prefix + key)
    return dataclasses.replace(obj, **changes)


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key.sub=value`` strings; values are parsed as YAML (``3e-4``, ``true``, ``[0.5, 0.8]``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(value, str) and raw.strip().lower() in {"none", "null", "~"}:
            value = None
        nested: dict = {}
        node = nested
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        cfg = _merge(cfg, nested)
    return cfg


REMOVED_KEYS = {"guard": ("inject_nan_at", "inject_lr_mult_at", "inject_lr_mult")}  # fault injection moved to train(callbacks=...)


def config_from_dict(d: dict) -> Config:
    """A config saved by this or an earlier jemkit (keys since removed are dropped; unknown keys are errors)."""
    d = {k: ({n: x for n, x in v.items() if n not in REMOVED_KEYS.get(k, ())} if isinstance(v, dict) else v)
         for k, v in d.items()}
    return _merge(Config(), d)
