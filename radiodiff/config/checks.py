"""The range of a key, declared beside its field in the schema, and the walk that checks a built config.

A field says ``max_steps: int = checked(150000, POSITIVE)``; :func:`check_ranges` then visits every field of the
built tree (defaults included), and after a section's own fields its ``check_together`` (the rules that span
keys), so that a rule spanning keys only ever sees keys that are in range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError


@dataclass(frozen=True)
class Range:
    """Which values a key accepts, and how its error says so (``train.lr: expected <expected>, got 0.0``)."""

    accepts: Callable[[Any], bool]
    expected: str


POSITIVE = Range(lambda value: value >= 1, "a positive integer")
# counts where 0 means "none": train.num_sample_images=0 writes no sample sheets
COUNT = Range(lambda value: value >= 0, "a count of 0 or more")
POSITIVE_OR_NULL = Range(lambda value: value is None or value >= 1, "a positive integer or null (keep all)")
LEARNING_RATE = Range(lambda value: value > 0, "a positive learning rate")
WEIGHT = Range(lambda value: value >= 0.0, "a weight of 0 or more")
# decays and momenta: 1 would never move
DECAY = Range(lambda value: 0.0 <= value < 1.0, "a value in [0, 1)")
FRACTION = Range(lambda value: 0.0 <= value < 1.0, "a fraction in [0, 1)")


def checked(default: Any, check: Range) -> Any:
    """A dataclass field with ``default`` whose values must lie in ``check``."""
    return dataclasses.field(default=default, metadata={"check": check})


def _range_of(cls: type, name: str) -> Range | None:
    # a stage that only changes a shared key's default (LDMTrainConfig's max_steps) keeps the range its base declared
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and "check" in declared.metadata:
            return declared.metadata["check"]
    return None


def check_ranges(config: Any, prefix: str = "") -> None:
    """Raise :class:`ConfigError` naming the first key of ``config`` outside its range, or the first broken rule
    of a section's ``check_together``."""
    for field in dataclasses.fields(config):
        value, key = getattr(config, field.name), prefix + field.name
        if dataclasses.is_dataclass(value):
            check_ranges(value, key + ".")
            continue
        check = _range_of(type(config), field.name)
        if check is not None and not check.accepts(value):
            raise ConfigError(f"{key}: expected {check.expected}, got {value}", key=key)
    check_together = getattr(config, "check_together", None)
    if check_together is not None:
        check_together(prefix)
