"""Training configuration: YAML files and ``dotted.key=value`` overrides, validated once into dataclasses.

Every other module receives these typed objects and never digs through nested dicts.

- ``errors``: :class:`ConfigError`, the one error a user sees
- ``schema``: the stages' dataclasses (the VAE, the second stage, RadioUNet), each key's range beside it; model sections default to the models' own
- ``checks``: the ranges a key may declare, and the walk that checks a built config
- ``typed``: nested mappings into the dataclasses, each value checked against its type
- ``original``: the original RadioDiff first-stage YAML into ours
- ``loading``: reading (file, overrides, validation) and saving
"""

from .errors import ConfigError
from .loading import (
    config_from_dict,
    load_data_config,
    load_radiounet_config,
    load_vae_config,
    read_ldm_config,
    read_radiounet_config,
    read_vae_config,
    read_yaml,
    save_config,
)
from .schema import (
    DataConfig,
    DenoiserConfig,
    DiffusionConfig,
    DiscriminatorConfig,
    FrozenVAEConfig,
    LatentsConfig,
    LDMConfig,
    LDMTrainConfig,
    RadioUNetConfig,
    RadioUNetModelConfig,
    RadioUNetTrainConfig,
    SyntheticConfig,
    TrainConfig,
    VAEConfig,
    VAEGANLossConfig,
    VAEModelConfig,
    VAETrainConfig,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "DenoiserConfig",
    "DiffusionConfig",
    "DiscriminatorConfig",
    "FrozenVAEConfig",
    "LDMConfig",
    "LDMTrainConfig",
    "LatentsConfig",
    "RadioUNetConfig",
    "RadioUNetModelConfig",
    "RadioUNetTrainConfig",
    "SyntheticConfig",
    "TrainConfig",
    "VAEConfig",
    "VAEGANLossConfig",
    "VAEModelConfig",
    "VAETrainConfig",
    "config_from_dict",
    "load_data_config",
    "load_radiounet_config",
    "load_vae_config",
    "read_ldm_config",
    "read_radiounet_config",
    "read_vae_config",
    "read_yaml",
    "save_config",
]
