"""Numbers as a reader wants them in tables and sentences."""

from __future__ import annotations

import math


def format_number(value: float | int | None) -> str:
    """``163,377.8``, ``0.01483``, ``5e-07``, ``-2,307``; an en dash for a missing value."""
    if value is None:
        return "–"
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) >= 1):
        return f"{int(value):,}"
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.1f}"
    if magnitude >= 1e-3 or magnitude == 0:
        return f"{value:.4g}"
    return f"{value:.3g}"


def format_percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"
