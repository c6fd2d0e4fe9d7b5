"""Nested mappings (as read from YAML) into the schema's dataclasses, every value checked against its type."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, Mapping

from .errors import ConfigError

_YAML_BOOL_WORDS = {False: ("no", "off", "false"), True: ("yes", "on", "true")}


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(annotation)[0])}"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked against ``annotation``; ints are accepted where floats are expected."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {annotation.__name__} keys, got {value!r}", key=key)
        return build(annotation, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _convert(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}", key=key)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if isinstance(value, bool):
            # YAML 1.1 reads an unquoted no/off (yes/on) as a boolean; take it back as the word when it is a choice
            value = next((word for word in _YAML_BOOL_WORDS[value] if word in choices), value)
        if not isinstance(value, bool) and value in choices:
            return value
        raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}", key=key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}", key=key)
        (item_type,) = typing.get_args(annotation)
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if annotation is type(None):
        if value is None:
            return None
    elif annotation is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e308 else math.inf
        elif isinstance(value, str):
            # PyYAML reads exponents without a dot (``5e-6``) as strings
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}", key=key)
            return number
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, annotation):
        return value
    raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}", key=key)


def build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """``cls`` from ``values``; a key that is not one of its fields is refused with the nearest one named.

    A section may list, as ``saved_by_older_versions``, keys that it no longer has, each with the value that older
    saved configs wrote for it: those are dropped when they hold exactly that value.
    """
    retired = getattr(cls, "saved_by_older_versions", {})
    values = {key: value for key, value in values.items() if not (key in retired and _same(value, retired[key]))}
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in valid]
    if unknown:
        key = f"{prefix}{unknown[0]}"
        nearest = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        suggestion = f"did you mean {prefix}{nearest[0]}? " if nearest else ""
        raise ConfigError(
            f"unknown key {key}; {suggestion}valid keys here: {', '.join(prefix + v for v in valid)}", key=key
        )
    return cls(**{key: _convert(value, hints[key], prefix + key) for key, value in values.items()})


def _same(value: Any, saved: Any) -> bool:
    # True == 1 and 0 == False in Python; an old file's false is not a count of 0
    return type(value) is type(saved) and value == saved
