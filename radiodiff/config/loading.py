"""Reading a config: the YAML file (ours or the original RadioDiff one), ``dotted.key=value`` overrides on top,
validated once into the schema's dataclasses; and writing one back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from ..file_writing import write_atomically
from .checks import check_ranges
from .errors import ConfigError
from .original import is_original_config, translate_original_config
from .schema import DataConfig, LDMConfig, RadioUNetConfig, VAEConfig
from .typed import build


def config_from_dict(values: Mapping[str, Any], schema: type = VAEConfig) -> Any:
    """Validate a nested mapping (as read from YAML) into a :class:`VAEConfig` (or an :class:`LDMConfig`)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"expected a mapping at the top of the config, got {type(values).__name__}")
    config = build(schema, values)
    check_ranges(config)
    return config


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides to a nested mapping; values are read as YAML scalars."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected dotted.key=value")
        *parents, leaf = key.split(".")
        node = values
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {'.'.join(parents[: i + 1])} is not a section")
            node = child
        try:
            node[leaf] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(f"override {override!r}: the value is not valid YAML ({error})") from error
    return values


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file ({error})") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error})") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(values).__name__}")
    return values


def load_data_config(path: str | Path, overrides: list[str] | None = None) -> DataConfig:
    """The validated ``data`` section of a training config of either stage, with ``overrides`` applied (those of
    other sections are ignored): what evaluation and the cards need to find a run's maps."""
    values = apply_overrides(read_yaml(path), overrides or [])
    try:
        return config_from_dict({"data": values.get("data") or {}}).data
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def read_vae_config(path: str | Path | None = None, overrides: list[str] | None = None) -> tuple[VAEConfig, list[str]]:
    """Read ``path`` (ours or the original RadioDiff YAML), apply ``overrides`` and validate.

    Returns the config and, for an original RadioDiff YAML, one note per original key saying what it became.
    """
    values = read_yaml(path) if path is not None else {}
    notes: list[str] = []
    if is_original_config(values):
        values, notes = translate_original_config(values)
    overrides = overrides or []
    return _validated(apply_overrides(values, overrides), VAEConfig, path, overrides), notes


def _validated(values: dict[str, Any], schema: type, path: str | Path | None, overrides: list[str]) -> Any:
    try:
        return config_from_dict(values, schema)
    except ConfigError as error:
        raise ConfigError(f"{_where_set(error.key, path, overrides)}{error}", key=error.key) from None


def _where_set(key: str | None, path: str | Path | None, overrides: list[str]) -> str:
    """``"command-line override 'k=v': "`` when ``key`` was set on the command line, else ``"<file>: "``."""
    for override in reversed(overrides):
        overridden = override.partition("=")[0]
        if key is not None and (
            key == overridden or key.startswith((overridden + ".", overridden + "[")) or overridden.startswith(key + ".")
        ):
            return f"command-line override {override!r}: "
    return f"{path}: " if path else ""


def load_vae_config(path: str | Path | None = None, overrides: list[str] | None = None) -> VAEConfig:
    """Read ``path`` (or the defaults), apply ``overrides`` and validate."""
    return read_vae_config(path, overrides)[0]


def read_ldm_config(path: str | Path | None = None, overrides: list[str] | None = None) -> tuple[LDMConfig, list[str]]:
    """Read a second-stage config ``path``, apply ``overrides`` and validate; there are no translation notes."""
    return _read_config(path, overrides, LDMConfig), []


def read_radiounet_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> tuple[RadioUNetConfig, list[str]]:
    """Read a RadioUNet config ``path``, apply ``overrides`` and validate; there are no translation notes."""
    return _read_config(path, overrides, RadioUNetConfig), []


def _read_config(path: str | Path | None, overrides: list[str] | None, schema: type) -> Any:
    """``path`` (or the defaults) with ``overrides`` applied, validated into ``schema``."""
    overrides = overrides or []
    values = apply_overrides(read_yaml(path) if path is not None else {}, overrides)
    return _validated(values, schema, path, overrides)


def load_radiounet_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RadioUNetConfig:
    """Read a RadioUNet config ``path`` (or the defaults), apply ``overrides`` and validate."""
    return read_radiounet_config(path, overrides)[0]


def save_config(config: VAEConfig | LDMConfig | RadioUNetConfig, path: str | Path) -> None:
    """Write ``config`` as YAML, replacing ``path`` atomically."""
    write_atomically(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
