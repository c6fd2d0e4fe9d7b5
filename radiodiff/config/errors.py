"""The one error the config raises: what a user mistyped, with the dotted key at fault."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration file, key or value that is not what the trainer expects.

    ``key`` is the dotted key at fault, when there is one, so that the message can say where it was set.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key
