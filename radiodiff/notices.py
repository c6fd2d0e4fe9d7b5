"""Warnings meant for the user of a command, printed as one ``warning: ...`` line each.

The library raises them with ``warnings.warn(message, RadioDiffWarning)``, so Python callers can filter or catch
them as usual; the two command lines (``radiodiff`` and ``train_*.py``) show them without Python's source path and
code line, the way they show errors.
"""

from __future__ import annotations

import warnings


class RadioDiffWarning(UserWarning):
    """Something the user should know about their input that does not stop the run (a skipped or converted image)."""


def show_warnings_as_lines() -> None:
    """From now on, print each ``RadioDiffWarning`` as ``warning: <message>``; other warnings as before.

    Only the formatting changes: where and whether a warning is shown (filters, ``-W``, ``catch_warnings``) stay
    Python's.
    """
    format_other = warnings.formatwarning
    if getattr(format_other, "formats_radiodiff_warnings", False):
        return

    def format_warning(message, category, filename, lineno, line=None):
        if issubclass(category, RadioDiffWarning):
            return f"warning: {message}\n"
        return format_other(message, category, filename, lineno, line)

    format_warning.formats_radiodiff_warnings = True
    warnings.formatwarning = format_warning
