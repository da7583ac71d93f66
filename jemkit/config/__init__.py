"""Typed configs: one dataclass per component, composed in ``Config`` (schema.py), loaded from YAML presets
(``jemkit/presets/*.yaml``, presets.py) and overridden by dotted keys (``--set optim.lr=3e-4``, overrides.py),
every value checked before anything runs (checks.py). The resolved config is saved with every run and checkpoint.
"""
from .checks import CHOICES, get_dotted, validate
from .overrides import REMOVED_KEYS, apply_overrides, config_from_dict
from .presets import load_config, load_preset, preset_description, preset_names, save_config
from .schema import (EXTERNAL_ARCH_PREFIXES, SCORE_ARCHS, SCORE_OBJECTIVES, SHAPE_FORMAT, TOY_DATASETS,
                     USER_DATA_PREFIXES, AdversarialConfig, BufferConfig, Config, ConfigError, DataConfig, EnergyOEConfig, GuardConfig,
                     ModelConfig, OptimConfig, SamplerConfig, ScoreConfig, TrainConfig)

__all__ = ["CHOICES", "EXTERNAL_ARCH_PREFIXES", "REMOVED_KEYS", "SCORE_ARCHS", "SCORE_OBJECTIVES", "SHAPE_FORMAT",
           "TOY_DATASETS", "USER_DATA_PREFIXES", "AdversarialConfig", "BufferConfig", "Config", "ConfigError", "DataConfig",
           "EnergyOEConfig", "GuardConfig", "ModelConfig", "OptimConfig", "SamplerConfig", "ScoreConfig", "TrainConfig",
           "apply_overrides", "config_from_dict", "get_dotted", "load_config", "load_preset", "preset_description",
           "preset_names", "save_config", "validate"]
