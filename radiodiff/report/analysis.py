"""Numbers from a parsed log: extent, speed, and per-quantity statistics overall and per phase."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

from .parse import TrainingLog

DISC_FACTOR = "train/disc_factor"
LOGVAR = "train/logvar"
NLL_LOSS = "train/nll_loss"
REC_LOSS = "train/rec_loss"


@dataclass(frozen=True)
class QuantityStats:
    """Statistics over a quantity's finite values (std with ddof=1, as pandas); ``final`` is the last finite one."""

    count: int
    nonfinite: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    final: float | None


@dataclass(frozen=True)
class Phase:
    """The steps before the discriminator starts, or from its start on."""

    name: str
    steps: int
    first_step: int | None
    last_step: int | None
    quantities: dict[str, QuantityStats]


@dataclass(frozen=True)
class Analysis:
    steps: int
    first_step: int | None
    last_step: int | None
    planned_steps: int | None
    disc_start: int | None
    # "config" when the config line gives disc_start, "disc_factor" when inferred from the first active step
    disc_start_source: str | None
    runs: int
    # hours between each run's first and last step line, summed: the time the log saw training
    duration_hours: float | None
    steps_per_hour: float | None
    quantities: dict[str, QuantityStats]
    phases: list[Phase]
    # nll / rec_loss at logvar 0: the pixels of one map (nll sums the per-pixel loss, rec_loss averages it)
    pixels_per_map: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def quantity_stats(values: np.ndarray) -> QuantityStats:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return QuantityStats(int(values.size), int(values.size), None, None, None, None, None)
    return QuantityStats(
        count=int(values.size),
        nonfinite=int(values.size - finite.size),
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)) if finite.size > 1 else None,
        min=float(finite.min()),
        max=float(finite.max()),
        final=float(finite[-1]),
    )


def _stats_where(log: TrainingLog, selected: np.ndarray) -> dict[str, QuantityStats]:
    return {
        name: quantity_stats(column[log.present[name] & selected])
        for name, column in log.columns.items()
        if (log.present[name] & selected).any()
    }


def discriminator_start(log: TrainingLog) -> tuple[int | None, str | None]:
    """``disc_start`` from the config line, else the first step that logs a positive ``disc_factor``."""
    if log.config.disc_start is not None:
        return log.config.disc_start, "config"
    if DISC_FACTOR in log.columns:
        active = log.steps_with(DISC_FACTOR)[log.values(DISC_FACTOR) > 0]
        if active.size:
            return int(active[0]), "disc_factor"
    return None, None


def planned_steps(log: TrainingLog) -> int | None:
    """The run's planned total: the config's, else the ``/TOTAL`` of the last step line."""
    if log.config.planned_steps is not None:
        return log.config.planned_steps
    return int(log.total_steps[-1]) if log.total_steps.size else None


def _phase(log: TrainingLog, name: str, selected: np.ndarray) -> Phase:
    steps = log.steps[selected]
    return Phase(
        name=name,
        steps=int(steps.size),
        first_step=int(steps[0]) if steps.size else None,
        last_step=int(steps[-1]) if steps.size else None,
        quantities=_stats_where(log, selected),
    )


def _training_time(log: TrainingLog) -> tuple[float | None, float | None]:
    """Hours the runs logged and the steps per hour over them; resumes do not count the downtime between runs."""
    seconds, steps = 0.0, 0
    for run in log.runs:
        if run.first_timestamp is None or run.last_timestamp is None:
            continue
        span = datetime.fromisoformat(run.last_timestamp) - datetime.fromisoformat(run.first_timestamp)
        seconds += span.total_seconds()
        steps += run.last_step - run.first_step
    if seconds <= 0:
        return None, None
    hours = seconds / 3600
    return hours, steps / hours


def _pixels_per_map(log: TrainingLog) -> float | None:
    if not {NLL_LOSS, REC_LOSS, LOGVAR} <= log.columns.keys():
        return None
    rows = log.present[NLL_LOSS] & log.present[REC_LOSS] & log.present[LOGVAR]
    nll, rec, logvar = log.columns[NLL_LOSS][rows], log.columns[REC_LOSS][rows], log.columns[LOGVAR][rows]
    usable = (logvar == 0) & (rec > 0) & np.isfinite(nll) & np.isfinite(rec)
    if not usable.any():
        return None
    return float(np.median(nll[usable] / rec[usable]))


def analyse(log: TrainingLog) -> Analysis:
    disc_start, disc_start_source = discriminator_start(log)
    everything = np.ones(log.steps.size, dtype=bool)
    phases = []
    if disc_start is not None:
        before = log.steps < disc_start
        phases = [_phase(log, "before_disc_start", before), _phase(log, "from_disc_start", ~before)]
    duration_hours, steps_per_hour = _training_time(log)
    return Analysis(
        steps=int(log.steps.size),
        first_step=int(log.steps[0]) if log.steps.size else None,
        last_step=int(log.steps[-1]) if log.steps.size else None,
        planned_steps=planned_steps(log),
        disc_start=disc_start,
        disc_start_source=disc_start_source,
        runs=len(log.runs),
        duration_hours=duration_hours,
        steps_per_hour=steps_per_hour,
        quantities=_stats_where(log, everything),
        phases=phases,
        pixels_per_map=_pixels_per_map(log),
    )
