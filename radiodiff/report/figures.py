"""The report's five figures, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .analysis import DISC_FACTOR, NLL_LOSS, REC_LOSS, Analysis
from .diagnosis import ADAPTIVE_WEIGHT_MAX, D_WEIGHT, Finding, DISC_LOSS, G_LOSS, KL_LOSS, LR, TOTAL_LOSS
from .formatting import format_number
from .parse import TrainingLog

FIGURE_NAMES = (
    "training_phases_analysis.png",
    "individual_losses_detailed.png",
    "metrics_overview_improved.png",
    "multi_axis_losses_improved.png",
    "normalized_comparison_improved.png",
)
DPI = 90
# more points than this are thinned by striding: a figure shows trends, not every step of a million-line log
MAX_POINTS = 4000
BEFORE_COLOUR, AFTER_COLOUR, START_COLOUR = "#dbe9f6", "#fde5cc", "#c0392b"
# values spanning more decades than this get a log axis
LOG_SCALE_DECADES = 1.5


def short_name(name: str) -> str:
    return name.removeprefix("train/")


def _series(log: TrainingLog, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and finite values of ``name``, thinned to at most MAX_POINTS."""
    steps, values = log.steps_with(name), log.values(name)
    finite = np.isfinite(values)
    steps, values = steps[finite], values[finite]
    stride = max(1, -(-steps.size // MAX_POINTS))
    return steps[::stride], values[::stride]


def _moving_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The mean over ``window`` points around each point; fewer at the ends, never padded with made-up values."""
    if window == 1 or values.size == 0:
        return values
    kernel = np.ones(window)
    return np.convolve(values, kernel, mode="same") / np.convolve(np.ones(values.size), kernel, mode="same")


def smooth(steps: np.ndarray, values: np.ndarray, disc_start: int | None) -> np.ndarray:
    """A centred moving mean over ~2% of the points, so trends show through batch noise; the phases before and
    from ``disc_start`` are smoothed apart, so that no curve seems to change before the discriminator starts."""
    window = max(1, values.size // 50) | 1
    if disc_start is None:
        return _moving_mean(values, window)
    before = steps < disc_start
    return np.concatenate([_moving_mean(values[before], window), _moving_mean(values[~before], window)])


def wants_log_scale(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return finite.size > 1 and finite.min() > 0 and np.log10(finite.max() / finite.min()) > LOG_SCALE_DECADES


def _mark_disc_start(ax: Axes, analysis: Analysis, label: bool = False) -> None:
    if analysis.disc_start is not None:
        ax.axvline(analysis.disc_start, color=START_COLOUR, linestyle="--", linewidth=1.2,
                   label=f"disc_start {format_number(analysis.disc_start)}" if label else None)


def _plot_quantity(ax: Axes, log: TrainingLog, analysis: Analysis, name: str, colour: str = "C0") -> None:
    """Raw values faint, their moving mean bold, a log axis where they span decades, disc_start marked."""
    steps, values = _series(log, name)
    if values.size and np.ptp(values) == 0:
        ax.text(0.5, 0.5, f"constant {format_number(float(values[0]))}\nat all {log.present[name].sum():,} steps",
                transform=ax.transAxes, ha="center", va="center", fontsize=11)
        ax.set_xlim(steps[0], steps[-1])
        ax.set_yticks([])
    else:
        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(steps, smooth(steps, values, analysis.disc_start), color=colour, linewidth=1.8)
        if wants_log_scale(values):
            ax.set_yscale("log")
    _mark_disc_start(ax, analysis)
    ax.set_title(short_name(name) + (" (log scale)" if ax.get_yscale() == "log" else ""), fontsize=11)
    ax.grid(alpha=0.3)


def _shade_phases(ax: Axes, log: TrainingLog, analysis: Analysis, label: bool = False) -> None:
    if analysis.disc_start is None or not log.steps.size:
        return
    first, last = int(log.steps[0]), int(log.steps[-1])
    if first < analysis.disc_start:
        ax.axvspan(first, min(analysis.disc_start, last), color=BEFORE_COLOUR,
                   label="before disc_start" if label else None)
    if last >= analysis.disc_start:
        ax.axvspan(max(analysis.disc_start, first), last, color=AFTER_COLOUR,
                   label="from disc_start" if label else None)


def _aligned(log: TrainingLog, *names: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Steps that log all ``names`` with finite values, and those values."""
    rows = np.logical_and.reduce([log.present[name] & np.isfinite(log.columns[name]) for name in names])
    return log.steps[rows], [log.columns[name][rows] for name in names]


def _thin(steps: np.ndarray, *series: np.ndarray) -> tuple[np.ndarray, ...]:
    stride = max(1, -(-steps.size // MAX_POINTS))
    return (steps[::stride], *(values[::stride] for values in series))


def total_loss_title(findings: list[Finding]) -> str:
    """The total-loss panel's title: it says the sign follows the adversarial term only for a run where it does."""
    dominated = next((finding.data.get("steps_dominated_by_adversarial_term", 0) for finding in findings
                      if finding.code == "negative_total_loss"), 0)
    if dominated:
        return (f"Total loss: negative at {dominated:,} steps because the adversarial term below outweighs the "
                "reconstruction")
    return "Total loss"


def training_phases(log: TrainingLog, analysis: Analysis, findings: list[Finding]) -> Figure:
    figure = Figure(figsize=(12, 10), layout="constrained")
    total_ax, parts_ax, weight_ax = figure.subplots(3, 1, sharex=True)
    for ax in (total_ax, parts_ax, weight_ax):
        _shade_phases(ax, log, analysis, label=ax is total_ax)
        ax.grid(alpha=0.3)
    if TOTAL_LOSS in log.columns:
        steps, total = _series(log, TOTAL_LOSS)
        total_ax.plot(steps, total, color="k", alpha=0.25, linewidth=0.8)
        total_ax.plot(steps, smooth(steps, total, analysis.disc_start), color="k", linewidth=1.8,
                      label="total_loss (moving mean)")
    total_ax.axhline(0, color="grey", linewidth=0.8)
    _mark_disc_start(total_ax, analysis, label=True)
    total_ax.set_title(total_loss_title(findings))
    total_ax.legend(loc="upper right", fontsize=9)

    needed = (NLL_LOSS, D_WEIGHT, DISC_FACTOR, G_LOSS)
    if all(name in log.columns for name in needed):
        steps, (nll, d_weight, disc_factor, g_loss) = _aligned(log, *needed)
        steps, nll, adversarial = _thin(steps, nll, d_weight * disc_factor * g_loss)
        parts_ax.plot(steps, smooth(steps, nll, analysis.disc_start), color="C0", linewidth=1.8, label="nll_loss")
        parts_ax.plot(steps, smooth(steps, adversarial, analysis.disc_start), color="C3", linewidth=1.8,
                      label="d_weight × disc_factor × g_loss")
        if KL_LOSS in log.columns and log.config.kl_weight is not None:
            kl_steps, kl = _series(log, KL_LOSS)
            kl_term = smooth(kl_steps, kl * log.config.kl_weight, analysis.disc_start)
            parts_ax.plot(kl_steps, kl_term, color="C2", linewidth=1.8,
                          label=f"kl_weight × kl_loss (kl_weight {format_number(log.config.kl_weight)})")
    parts_ax.axhline(0, color="grey", linewidth=0.8)
    _mark_disc_start(parts_ax, analysis)
    parts_ax.set_title("The terms of the total (moving means)")
    parts_ax.legend(loc="center right", fontsize=9)

    if D_WEIGHT in log.columns:
        steps, d_weight = _series(log, D_WEIGHT)
        weight_ax.plot(steps, d_weight, color="C4", linewidth=1.0, label="d_weight (adaptive weight × disc_weight)")
    if log.config.disc_weight is not None:
        weight_ax.axhline(ADAPTIVE_WEIGHT_MAX * log.config.disc_weight, color="grey", linestyle=":",
                          label=f"clamp {format_number(ADAPTIVE_WEIGHT_MAX * log.config.disc_weight)}")
    _mark_disc_start(weight_ax, analysis)
    weight_ax.set_title("Adaptive weight of the generator term")
    weight_ax.legend(loc="lower right", fontsize=9)
    weight_ax.set_xlabel("step")
    return figure


def individual_losses(log: TrainingLog, analysis: Analysis) -> Figure:
    names = list(log.columns)
    columns = 3
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(14, 3.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, (ax, name) in enumerate(zip(axes, names)):
        _plot_quantity(ax, log, analysis, name, colour=f"C{index % 10}")
        ax.set_xlabel("step", fontsize=9)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    figure.suptitle("Every logged quantity: raw (faint), moving mean (bold), disc_start dashed", fontsize=13)
    return figure


def _steps_per_hour(log: TrainingLog) -> tuple[np.ndarray, np.ndarray]:
    """Speed between consecutive logged steps of the same run, from the line timestamps."""
    seconds = np.array([datetime.fromisoformat(stamp).timestamp() for stamp in log.timestamps])
    step_gaps, time_gaps = np.diff(log.steps), np.diff(seconds)
    usable = (time_gaps > 0) & (step_gaps > 0)
    return log.steps[1:][usable], 3600 * step_gaps[usable] / time_gaps[usable]


def _discriminator_panel(ax: Axes, log: TrainingLog, analysis: Analysis) -> None:
    names = [name for name in (DISC_LOSS, "train/logits_real", "train/logits_fake") if name in log.columns]
    for index, name in enumerate(names):
        steps, values = _series(log, name)
        ax.plot(steps, smooth(steps, values, analysis.disc_start), color=f"C{index + 3}", linewidth=1.5,
                label=short_name(name))
    if names:
        ax.legend(fontsize=9)
    elif log.steps.size:
        ax.set_xlim(log.steps[0], log.steps[-1])
        ax.text(0.5, 0.5, f"no discriminator lines\nin {log.counts.total:,} log lines", transform=ax.transAxes,
                ha="center", va="center", fontsize=12, color=START_COLOUR)
        ax.set_yticks([])
    _mark_disc_start(ax, analysis)
    ax.set_title("Discriminator")
    ax.grid(alpha=0.3)


def _learning_rate_panel(ax: Axes, log: TrainingLog, analysis: Analysis) -> None:
    """The printed ``lr`` against the config's: on a log axis, where a value printed as 0 cannot appear."""
    settings = ((log.config.lr, "config lr"), (log.config.min_lr, "config min_lr"))
    configured = [(value, label) for value, label in settings if value is not None and value > 0]
    printed_zero = 0
    if LR in log.columns:
        steps, lr = _series(log, LR)
        printed_zero = int((log.values(LR) == 0).sum())
        if (lr > 0).any():
            ax.plot(steps[lr > 0], lr[lr > 0], color="C1", linewidth=1.5, label="lr as printed")
    for value, label in configured:
        ax.axhline(value, color="grey", linestyle=":", label=f"{label} {format_number(value)}")
    if configured or (LR in log.columns and (log.values(LR) > 0).any()):
        ax.set_yscale("log")
    if printed_zero:
        decimals = log.learning_rate_print.fixed_point_decimals
        ax.text(0.5, 0.5,
                f"lr printed as {0:.{decimals or 0}f}\nat {printed_zero:,} of {int(log.present[LR].sum()):,} steps",
                transform=ax.transAxes, ha="center", va="center", fontsize=12, color=START_COLOUR)
    if log.steps.size:
        ax.set_xlim(log.steps[0], log.steps[-1])
    _mark_disc_start(ax, analysis)
    ax.set_title("Learning rate (log scale)" if ax.get_yscale() == "log" else "Learning rate")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)


def metrics_overview(log: TrainingLog, analysis: Analysis) -> Figure:
    figure = Figure(figsize=(15, 8.5), layout="constrained")
    axes = figure.subplots(2, 3).ravel()
    for ax, name, colour in zip(axes[:3], (REC_LOSS, KL_LOSS, G_LOSS), ("C0", "C2", "C3")):
        if name in log.columns:
            _plot_quantity(ax, log, analysis, name, colour)
        else:
            ax.set_title(f"{short_name(name)}: not logged")
    _discriminator_panel(axes[3], log, analysis)
    _learning_rate_panel(axes[4], log, analysis)
    steps, speed = _steps_per_hour(log)
    axes[5].plot(*_thin(steps, speed), color="C7", alpha=0.3, linewidth=0.8)
    axes[5].plot(*_thin(steps, smooth(steps, speed, analysis.disc_start)), color="C7", linewidth=1.8)
    _mark_disc_start(axes[5], analysis)
    axes[5].set_title("Training speed (steps per hour)")
    axes[5].grid(alpha=0.3)
    for ax in axes:
        ax.set_xlabel("step", fontsize=9)
    figure.suptitle("Overview: reconstruction, regularisation, adversarial terms, learning rate, speed", fontsize=13)
    return figure


def multi_axis_losses(log: TrainingLog, analysis: Analysis) -> Figure:
    figure = Figure(figsize=(13, 6), layout="constrained")
    total_ax = figure.subplots()
    axes = [total_ax, total_ax.twinx(), total_ax.twinx()]
    axes[2].spines["right"].set_position(("axes", 1.09))
    lines = []
    for ax, name, colour in zip(axes, (TOTAL_LOSS, KL_LOSS, REC_LOSS), ("k", "C2", "C0")):
        if name not in log.columns:
            continue
        steps, values = _series(log, name)
        lines += ax.plot(steps, smooth(steps, values, analysis.disc_start), color=colour, linewidth=1.6,
                         label=short_name(name))
        ax.set_ylabel(short_name(name) + (" (log)" if wants_log_scale(values) else ""), color=colour)
        ax.tick_params(axis="y", colors=colour)
        if wants_log_scale(values):
            ax.set_yscale("log")
    _mark_disc_start(total_ax, analysis)
    total_ax.axhline(0, color="grey", linewidth=0.6)
    total_ax.set_xlabel("step")
    total_ax.grid(alpha=0.3)
    total_ax.legend(handles=lines, loc="upper center", fontsize=9)
    total_ax.set_title("Three losses on their own axes (moving means); disc_start dashed")
    return figure


def normalized_comparison(log: TrainingLog, analysis: Analysis) -> Figure:
    figure = Figure(figsize=(13, 6), layout="constrained")
    ax = figure.subplots()
    for index, name in enumerate(log.columns):
        steps, values = _series(log, name)
        # flags such as disc_factor (0 or 1) have no curve shape to compare
        if np.unique(values).size <= 2:
            continue
        low, high = np.percentile(values, [1, 99])
        if high <= low:
            continue
        scaled = np.clip((smooth(steps, values, analysis.disc_start) - low) / (high - low), 0, 1)
        ax.plot(steps, scaled, color=f"C{index % 10}", linewidth=1.5, label=short_name(name))
    _mark_disc_start(ax, analysis, label=True)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("step")
    ax.set_ylabel("scaled to its 1st–99th percentile")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_title("Shapes of the curves (moving means, each scaled to its own range; constants and 0/1 flags left out)")
    return figure


def write_figures(log: TrainingLog, analysis: Analysis, findings: list[Finding], out_dir: Path) -> list[Path]:
    """Draw the five figures into ``out_dir``; returns their paths in FIGURE_NAMES order."""
    drawers = (functools.partial(training_phases, findings=findings), individual_losses, metrics_overview,
               multi_axis_losses, normalized_comparison)
    paths = []
    for name, draw in zip(FIGURE_NAMES, drawers):
        path = out_dir / name
        draw(log, analysis).savefig(path, dpi=DPI)
        paths.append(path)
    return paths
