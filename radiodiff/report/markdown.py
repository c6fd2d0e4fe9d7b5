"""``report.md``: summary, diagnosis, tables, figures and the sample gallery, with links relative to the report."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .analysis import Analysis, Phase, QuantityStats
from .diagnosis import Finding
from .figures import short_name
from .formatting import format_number
from .parse import TrainingLog

GALLERY_COLUMNS = 4
FIGURE_CAPTIONS = {
    "training_phases_analysis.png": (
        "Training phases. Top: the total loss, shaded before and from `disc_start`. Middle: the terms it is made "
        "of. Bottom: the adaptive weight `d_weight` and its clamp."
    ),
    "individual_losses_detailed.png": "Every logged quantity on its own axis (log scale where it spans decades).",
    "metrics_overview_improved.png": (
        "Reconstruction, KL and generator terms; the discriminator's own lines; the learning rate as printed "
        "against the config's; the training speed from the timestamps."
    ),
    "multi_axis_losses_improved.png": "Total, KL and reconstruction losses on three axes of their own.",
    "normalized_comparison_improved.png": (
        "Every quantity that varies scaled to its own 1st–99th percentile range: compares the shapes of the "
        "curves, not their sizes."
    ),
}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path, out_dir)).as_posix()


def _summary(log: TrainingLog, analysis: Analysis) -> str:
    config = log.config
    rows = [
        ["steps logged",
         f"{analysis.steps:,} ({format_number(analysis.first_step)} → {format_number(analysis.last_step)})"],
        ["planned steps", format_number(analysis.planned_steps)],
        ["discriminator start",
         f"{format_number(analysis.disc_start)} (from {analysis.disc_start_source or 'nowhere'})"],
        ["time logged", "–" if analysis.duration_hours is None else f"{analysis.duration_hours:.2f} h, "
                        f"{format_number(round(analysis.steps_per_hour))} steps per hour"],
        ["runs in this log", f"{analysis.runs} ({max(analysis.runs - 1, 0)} restarts)"],
        ["learning rate (config)", f"{format_number(config.lr)} → {format_number(config.min_lr)}"],
        ["kl_weight, disc_weight", f"{format_number(config.kl_weight)}, {format_number(config.disc_weight)}"],
        ["batch size, log every", f"{format_number(config.batch_size)}, {format_number(config.log_every)}"],
    ]
    if analysis.pixels_per_map is not None:
        side = math.sqrt(analysis.pixels_per_map)
        rows.append(["pixels per map (median nll_loss / rec_loss)",
                     f"{format_number(round(analysis.pixels_per_map))} (= {side:.0f} × {side:.0f} if square)"])
    return _table(["", ""], rows)


def _diagnosis(findings: list[Finding]) -> str:
    if not findings:
        return ("The checks (discriminator activity, adaptive-weight clamp, sign of the total loss, learning-rate "
                "print, non-finite values, reconstruction trend, run length) found nothing to report.")
    return "\n\n".join(f"### {index}. {finding.title}\n\n{finding.evidence}" for index, finding in
                       enumerate(findings, start=1))


def _samples_limit(log: TrainingLog, samples: list[tuple[int, Path]]) -> list[str]:
    """What the sample images can show, which depends on the trainer that drew them."""
    if not samples:
        return []
    if log.config.syntax == "json":
        return ["The sample sheets below show a few fixed validation maps beside their reconstructions and errors: "
                "they show accuracy on those maps only, not on the split."]
    return ["The samples below are the original trainer's reconstructions alone: without the ground-truth maps "
            "beside them they show style, not accuracy."]


def _limits(log: TrainingLog, findings: list[Finding], samples: list[tuple[int, Path]]) -> str:
    codes = {finding.code for finding in findings}
    limits = [
        "The losses are measured on training batches as they passed: they are noisy, and they say nothing about "
        "maps the model has not seen. Reconstruction quality needs an evaluation on held-out maps.",
        "The total loss adds terms scaled by their weights; compare runs by `rec_loss` and `nll_loss`.",
        "`kl_loss` is a sum over every latent element: its size depends on the latent shape, and it enters the "
        "total multiplied by `kl_weight`.",
        *_samples_limit(log, samples),
    ]
    if "discriminator_never_trained" in codes:
        limits.insert(0, "Nothing in this log measures adversarial training: `g_loss` comes from a discriminator "
                         "that did not learn, so no statement about a GAN effect can rest on it.")
    return "\n".join(f"- {limit}" for limit in limits)


def _stats_row(name: str, stats: QuantityStats) -> list[str]:
    return [f"`{name}`", f"{stats.count:,}"] + [format_number(value) for value in
                                                (stats.mean, stats.std, stats.min, stats.max, stats.final)] + [
        f"{stats.nonfinite:,}"]


def _statistics(analysis: Analysis) -> str:
    header = ["quantity", "steps", "mean", "std", "min", "max", "final", "non-finite"]
    return _table(header, [_stats_row(name, stats) for name, stats in analysis.quantities.items()])


def _phases(phases: list[Phase]) -> str:
    if not phases:
        return "No `disc_start` in the config and no step with `disc_factor` > 0: the log has a single phase."
    before, after = phases
    lines = [
        f"- before `disc_start`: {before.steps:,} steps"
        + (f" ({format_number(before.first_step)} → {format_number(before.last_step)})" if before.steps else ""),
        f"- from `disc_start` on: {after.steps:,} steps"
        + (f" ({format_number(after.first_step)} → {format_number(after.last_step)})" if after.steps else ""),
    ]
    names = list(dict.fromkeys([*before.quantities, *after.quantities]))
    rows = []
    for name in names:
        cells = [f"`{name}`"]
        for phase in phases:
            stats = phase.quantities.get(name)
            numbers = (stats.mean, stats.std, stats.final) if stats else (None, None, None)
            cells += [format_number(number) for number in numbers]
        rows.append(cells)
    header = ["quantity", "before: mean", "before: std", "before: final", "from: mean", "from: std", "from: final"]
    return "\n".join(lines) + "\n\n" + _table(header, rows)


def _figures(figure_paths: list[Path], out_dir: Path) -> str:
    return "\n\n".join(
        f"![{path.stem}]({_link(path, out_dir)})\n\n*{FIGURE_CAPTIONS[path.name]}*" for path in figure_paths
    )


def _gallery(samples: list[tuple[int, Path]], out_dir: Path, searched: list[Path], sample_every: int | None) -> str:
    if not samples:
        places = ", ".join(f"`{folder}`" for folder in searched)
        return f"No `sample-<milestone>.png` found in {places}."

    def label(milestone: int) -> str:
        return f"milestone {milestone}" + (f" (step {milestone * sample_every:,})" if sample_every else "")

    tables = []
    for start in range(0, len(samples), GALLERY_COLUMNS):
        row = samples[start:start + GALLERY_COLUMNS]
        tables.append(_table([label(milestone) for milestone, _ in row],
                             [[f"![sample-{milestone}]({_link(path, out_dir)})" for milestone, path in row]]))
    return f"{len(samples)} sample images, in milestone order.\n\n" + "\n\n".join(tables)


def _log_lines(log: TrainingLog) -> str:
    counts = log.counts
    rows = [
        ["config lines (one per run)", counts.config],
        ["generator step lines", counts.generator],
        ["discriminator step lines", counts.discriminator],
        ["skipped-step lines (non-finite loss)", counts.skipped_step],
        ["other messages of the trainer", counts.other_messages],
        ["lines from other loggers (no timestamp)", counts.foreign],
        ["step lines cut short", counts.truncated],
        ["unreadable step or config lines", counts.malformed],
        ["blank lines", counts.blank],
        ["all lines", counts.total],
    ]
    text = _table(["lines", "count"], [[label, f"{count:,}"] for label, count in rows])
    notes = [f"Runs in this file: {len(log.runs)}; {log.relogged_steps:,} steps logged again by a later run "
             "(the later run's values are kept)."]
    if log.missing_keys:
        notes.append("Lines lacking keys that other lines of their kind print: " + ", ".join(
            f"`{short_name(key)}` {count:,}" for key, count in log.missing_keys.items()) + ".")
    return text + "\n\n" + " ".join(notes)


def render_markdown(
    log: TrainingLog,
    analysis: Analysis,
    findings: list[Finding],
    figure_paths: list[Path],
    samples: list[tuple[int, Path]],
    searched: list[Path],
    out_dir: Path,
) -> str:
    sections = [
        f"# Training report: `{log.path.name}`",
        f"Written by `radiodiff report` from `{log.path}`: {log.counts.total:,} lines, "
        "parsed into `training_data_parsed.csv` (one row per step) and `training_analysis.json`.",
        "## Summary", _summary(log, analysis),
        "## Diagnosis", _diagnosis(findings),
        "### What these numbers do not show", _limits(log, findings, samples),
        "## Statistics",
        "Over each quantity's finite values (std with ddof = 1); *final* is the last finite value.",
        _statistics(analysis),
        "## Phases", _phases(analysis.phases),
        "## Figures", _figures(figure_paths, out_dir),
        "## Samples", _gallery(samples, out_dir, searched, log.config.sample_every),
        "## The log itself", _log_lines(log),
    ]
    return "\n\n".join(sections) + "\n"
