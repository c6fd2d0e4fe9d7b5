"""Warnings meant for the user of a command, printed as one ``warning: ...`` line each.

The library raises them with ``warnings.warn(message, RadioDiffWarning)``, so Python callers can filter or catch
them as usual; the two command lines (``radiodiff`` and ``train_*.py``) show them without Python's source path and
code line, the way they show errors.
"""

from __future__ import annotations

import sys
import warnings


class RadioDiffWarning(UserWarning):
    """Something the user should know about their input that does not stop the run (a skipped or converted image)."""


def show_warnings_as_lines() -> None:
    """From now on, print each ``RadioDiffWarning`` as ``warning: <message>`` on stderr; other warnings as before."""
    show_other = warnings.showwarning
    if getattr(show_other, "prints_radiodiff_warnings", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RadioDiffWarning):
            print(f"warning: {message}", file=sys.stderr if file is None else file)
        else:
            show_other(message, category, filename, lineno, file, line)

    show.prints_radiodiff_warnings = True
    warnings.showwarning = show
