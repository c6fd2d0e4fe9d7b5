"""What a log shows about a run that its loss curves hide: each check returns a finding with its evidence, or None.

Every check is silent on a healthy run; a finding states the counts and steps it rests on, and what they mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .analysis import DISC_FACTOR, NLL_LOSS, REC_LOSS, Analysis
from .formatting import format_number, format_percent
from .parse import TrainingLog

TOTAL_LOSS = "train/total_loss"
KL_LOSS = "train/kl_loss"
D_WEIGHT = "train/d_weight"
G_LOSS = "train/g_loss"
DISC_LOSS = "train/disc_loss"
LR = "lr"

# the adaptive weight's ratio is clamped to this before ``disc_weight`` multiplies it
# (radiodiff.losses.vae_gan.ADAPTIVE_WEIGHT_MAX, restated: the report must not import torch)
ADAPTIVE_WEIGHT_MAX = 1e4
# "most steps": the share of steps at the clamp that makes the adaptive weight a constant in effect
CLAMPED_SHARE = 0.5
# a trend needs both a consistent direction (rank correlation) and a visible size (median change)
RISING_RANK_CORRELATION = 0.3
RISING_MEDIAN_RATIO = 1.1
MIN_TREND_POINTS = 8


@dataclass(frozen=True)
class Finding:
    code: str
    title: str
    # sentences with the counts and steps, in Markdown
    evidence: str
    data: dict[str, Any] = field(default_factory=dict)


def describe_steps(steps: np.ndarray, shown: int = 5) -> str:
    """``steps 300, 400 and 500`` or ``900 steps from 50,100 to 149,900``."""
    if steps.size <= shown:
        listed = [format_number(int(step)) for step in steps]
        return "step " + listed[0] if len(listed) == 1 else "steps " + ", ".join(listed[:-1]) + " and " + listed[-1]
    return f"{steps.size:,} steps from {format_number(int(steps[0]))} to {format_number(int(steps[-1]))}"


def _active_adversarial_rows(log: TrainingLog, analysis: Analysis) -> np.ndarray:
    """Rows where the generator's adversarial term is on: ``disc_factor > 0``, else ``step >= disc_start``."""
    if DISC_FACTOR in log.columns:
        return log.present[DISC_FACTOR] & (log.columns[DISC_FACTOR] > 0)
    if analysis.disc_start is None:
        return np.zeros(log.steps.size, dtype=bool)
    return log.steps >= analysis.disc_start


def discriminator_never_trained(log: TrainingLog, analysis: Analysis) -> Finding | None:
    if analysis.disc_start is None:
        return None
    from_start = log.steps >= analysis.disc_start
    if not from_start.any():
        return None
    steps_from_start = log.steps[from_start]
    with_generator_term = int((_active_adversarial_rows(log, analysis) & from_start).sum())
    consequence = (
        f" The generator term was nevertheless on at {with_generator_term:,} of these steps (`disc_factor` > 0): "
        "the VAE was trained against a discriminator that, as far as this log shows, never took a step, so "
        "`g_loss` carries no information about the maps."
    ) if with_generator_term else ""
    disc_rows = from_start & log.present[DISC_LOSS] if DISC_LOSS in log.columns else np.zeros_like(from_start)
    source = "the config line" if analysis.disc_start_source == "config" else "the first step with `disc_factor` > 0"
    if not disc_rows.any():
        return Finding(
            code="discriminator_never_trained",
            title="The discriminator never trained",
            evidence=(
                f"`disc_start` is {format_number(analysis.disc_start)} ({source}); the log has "
                f"{describe_steps(steps_from_start)} from there on, and not one of them has a discriminator line "
                f"(`{DISC_LOSS}`); the whole log has {log.counts.discriminator:,} discriminator lines."
                + consequence
            ),
            data={
                "disc_start": analysis.disc_start,
                "steps_from_disc_start": int(from_start.sum()),
                "discriminator_steps_from_disc_start": 0,
                "discriminator_lines": log.counts.discriminator,
                "steps_with_generator_term": with_generator_term,
            },
        )
    disc_loss = log.columns[DISC_LOSS][disc_rows]
    finite = disc_loss[np.isfinite(disc_loss)]
    if finite.size < 2 or np.ptp(finite) > 0:
        return None
    return Finding(
        code="discriminator_never_trained",
        title="The discriminator loss never moves",
        evidence=(
            f"`{DISC_LOSS}` is {format_number(float(finite[0]))} at every one of the {finite.size:,} discriminator "
            f"steps from `disc_start` {format_number(analysis.disc_start)} "
            f"({describe_steps(log.steps[disc_rows])}): a loss that never changes is a discriminator that does not "
            "learn (frozen parameters, a zero learning rate, or a zero `disc_factor` in its loss)." + consequence
        ),
        data={
            "disc_start": analysis.disc_start,
            "steps_from_disc_start": int(from_start.sum()),
            "discriminator_steps_from_disc_start": int(disc_rows.sum()),
            "constant_disc_loss": float(finite[0]),
            "steps_with_generator_term": with_generator_term,
        },
    )


def adaptive_weight_at_clamp(log: TrainingLog, analysis: Analysis) -> Finding | None:
    disc_weight = log.config.disc_weight
    if disc_weight is None or disc_weight <= 0 or D_WEIGHT not in log.columns:
        return None
    clamp = ADAPTIVE_WEIGHT_MAX * disc_weight
    logged = log.present[D_WEIGHT]
    at_clamp = logged & np.isclose(log.columns[D_WEIGHT], clamp, rtol=1e-6, atol=0.0)
    active = _active_adversarial_rows(log, analysis) & logged
    if not active.any() or (at_clamp & active).sum() <= CLAMPED_SHARE * active.sum():
        return None
    n_active, n_clamped = int(active.sum()), int((at_clamp & active).sum())
    return Finding(
        code="adaptive_weight_at_clamp",
        title="The adaptive weight sits at its clamp",
        evidence=(
            f"`d_weight` equals its ceiling {format_number(clamp)} (= {format_number(ADAPTIVE_WEIGHT_MAX)} × "
            f"`disc_weight` {format_number(disc_weight)}) at {n_clamped:,} of the {n_active:,} steps with the "
            f"adversarial term on ({format_percent(n_clamped, n_active)}), and at {int(at_clamp.sum()):,} of the "
            f"{int(logged.sum()):,} steps that log it ({describe_steps(log.steps[at_clamp])}). The ratio "
            "‖∇nll‖ / (‖∇g_loss‖ + 1e-4) at the decoder's last layer is then above 1e4: the generator term's "
            "gradient is negligible next to the reconstruction's, and its weight is set by the clamp, not balanced "
            "by the adaptive rule."
        ),
        data={
            "clamp": clamp,
            "steps_at_clamp_with_adversarial_term": n_clamped,
            "steps_with_adversarial_term": n_active,
            "steps_at_clamp": int(at_clamp.sum()),
            "steps_logging_d_weight": int(logged.sum()),
        },
    )


def negative_total_loss(log: TrainingLog, analysis: Analysis) -> Finding | None:
    needed = (TOTAL_LOSS, NLL_LOSS, D_WEIGHT, DISC_FACTOR, G_LOSS)
    if TOTAL_LOSS not in log.columns:
        return None
    negative = log.present[TOTAL_LOSS] & (log.columns[TOTAL_LOSS] < 0)
    if not negative.any():
        return None
    n_negative = int(negative.sum())
    where = (f"`{TOTAL_LOSS}` is negative at {n_negative:,} of {int(log.present[TOTAL_LOSS].sum()):,} steps "
             f"({describe_steps(log.steps[negative])}).")
    if not all(name in log.columns for name in needed):
        return Finding("negative_total_loss", "The total loss is negative", where, {"steps_negative": n_negative})
    rows = negative & np.logical_and.reduce([log.present[name] for name in needed])
    adversarial = (log.columns[D_WEIGHT] * log.columns[DISC_FACTOR] * log.columns[G_LOSS])[rows]
    # everything in the total that is not the adversarial term: nll + kl_weight * kl
    rest = log.columns[TOTAL_LOSS][rows] - adversarial
    dominated = (adversarial < 0) & (-adversarial > rest)
    data = {
        "steps_negative": n_negative,
        "steps_negative_from_disc_start": int((negative & (log.steps >= (analysis.disc_start or 0))).sum()),
        "first_negative_step": int(log.steps[negative][0]),
        "steps_dominated_by_adversarial_term": int(dominated.sum()),
    }
    if not dominated.any():
        nll = log.columns[NLL_LOSS][rows]
        return Finding(
            "negative_total_loss",
            "The total loss is negative",
            where + f" The adversarial term does not explain it; `{NLL_LOSS}` itself is negative at "
            f"{int((nll < 0).sum()):,} of them (a learned `logvar` lets nll go below zero).",
            data,
        )
    data.update(
        median_adversarial_term=float(np.median(adversarial)),
        median_nll_loss=float(np.median(log.columns[NLL_LOSS][rows])),
        median_rest=float(np.median(rest)),
    )
    return Finding(
        code="negative_total_loss",
        title="The total loss is negative because the adversarial term dominates",
        evidence=(
            where + f" At {int(dominated.sum()):,} of them the adversarial term `d_weight × disc_factor × g_loss` "
            f"(median {format_number(data['median_adversarial_term'])}) outweighs everything else in the total, "
            f"`nll_loss + kl_weight × kl_loss` (median {format_number(data['median_rest'])}; `nll_loss` alone "
            f"{format_number(data['median_nll_loss'])}). A negative total is not a better model: it says how large "
            "a weight multiplies `g_loss = −mean(D(x̂))`, and that is only meaningful if the discriminator learns. "
            "Compare runs and phases by `rec_loss` and `nll_loss`, not by the total."
        ),
        data=data,
    )


def learning_rate_unreadable(log: TrainingLog, analysis: Analysis) -> Finding | None:
    printed = log.learning_rate_print
    if not printed.fixed_point or LR not in log.columns:
        return None
    resolution = 10.0 ** -printed.fixed_point_decimals
    zeros = int((log.values(LR) == 0).sum())
    configured = [value for value in (log.config.lr, log.config.min_lr) if value is not None]
    # fewer than two significant digits: the printed value cannot show a schedule
    too_small = [value for value in configured if value < 10 * resolution]
    if not zeros and not too_small:
        return None
    if configured:
        schedule = " → ".join(format_number(value) for value in configured)
        meaning = (
            f"The config sets the learning rate to {schedule}, below what {printed.fixed_point_decimals} decimals "
            "can show: the log cannot tell the schedule, and a printed 0 does not mean the learning rate decayed to 0."
        )
    else:
        meaning = "Without a config line the log cannot tell a zero learning rate from one below that resolution."
    return Finding(
        code="learning_rate_unreadable",
        title="The learning rate was printed too coarsely to read",
        evidence=(
            f"`lr` is printed in fixed point with {printed.fixed_point_decimals} decimals (resolution "
            f"{resolution:g}) on {printed.fixed_point:,} of {printed.tokens:,} lines, and reads "
            f"{0:.{printed.fixed_point_decimals}f} at {zeros:,} of the {int(log.present[LR].sum()):,} steps. " + meaning
        ),
        data={
            "decimals": printed.fixed_point_decimals,
            "fixed_point_lines": printed.fixed_point,
            "steps_printed_as_zero": zeros,
            "config_lr": log.config.lr,
            "config_min_lr": log.config.min_lr,
        },
    )


def non_finite_values(log: TrainingLog, analysis: Analysis) -> Finding | None:
    per_column = {}
    for name, column in log.columns.items():
        bad = log.present[name] & ~np.isfinite(column)
        if bad.any():
            per_column[name] = log.steps[bad]
    skipped = np.array(sorted(set(log.skipped_steps)), dtype=np.int64)
    if not per_column and not skipped.size:
        return None
    sentences = [f"`{name}` at {describe_steps(steps)}" for name, steps in per_column.items()]
    evidence = ("Non-finite values (nan or inf): " + "; ".join(sentences) + ".") if sentences else ""
    if skipped.size:
        evidence += (
            f" The trainer skipped {len(log.skipped_steps):,} updates for a non-finite loss "
            f"({describe_steps(skipped)})."
        )
    return Finding(
        code="non_finite_values",
        title="Non-finite values in the log",
        evidence=evidence.strip() + " The statistics and figures leave these values out.",
        data={
            "columns": {name: int(steps.size) for name, steps in per_column.items()},
            "skipped_steps": len(log.skipped_steps),
        },
    )


def _rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    ranks_x, ranks_y = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(ranks_x, ranks_y)[0, 1])


def reconstruction_loss_rising(log: TrainingLog, analysis: Analysis) -> Finding | None:
    if REC_LOSS not in log.columns:
        return None
    usable = log.present[REC_LOSS] & np.isfinite(log.columns[REC_LOSS])
    spans = [("over the whole log", usable)]
    if analysis.disc_start is not None:
        from_start = usable & (log.steps >= analysis.disc_start)
        spans.append((f"from `disc_start` {format_number(analysis.disc_start)} on", from_start))
    for where, rows in spans:
        steps, rec = log.steps[rows], log.columns[REC_LOSS][rows]
        if steps.size < MIN_TREND_POINTS or np.ptp(rec) == 0:
            continue
        quarter = steps.size // 4
        first, last = float(np.median(rec[:quarter])), float(np.median(rec[-quarter:]))
        correlation = _rank_correlation(steps, rec)
        if correlation > RISING_RANK_CORRELATION and last > RISING_MEDIAN_RATIO * first:
            return Finding(
                code="reconstruction_loss_rising",
                title="The reconstruction loss trends upward",
                evidence=(
                    f"`{REC_LOSS}` rises {where}: its median is {format_number(first)} over the first quarter of "
                    f"the steps ({format_number(int(steps[0]))}–{format_number(int(steps[quarter - 1]))}) and "
                    f"{format_number(last)} over the last ({format_number(int(steps[-quarter]))}–"
                    f"{format_number(int(steps[-1]))}), {last / first - 1:+.0%}; the rank correlation with the step is "
                    f"{correlation:+.2f} over {steps.size:,} steps. The VAE reconstructs its training batches worse as "
                    "training goes on: something else in the loss (the adversarial or the KL term) is winning."
                ),
                data={"where": where, "first_quarter_median": first, "last_quarter_median": last,
                      "rank_correlation": correlation, "steps": int(steps.size)},
            )
    return None


def run_ended_early(log: TrainingLog, analysis: Analysis, sample_milestones: Sequence[int] = ()) -> Finding | None:
    """A log that stops short of the plan; a sample saved at a later milestone shows how far the run really got."""
    planned, last = analysis.planned_steps, analysis.last_step
    if planned is None or last is None or last >= planned:
        return None
    log_every = log.config.log_every or (int(np.median(np.diff(log.steps))) if log.steps.size > 1 else 1)
    sample_every = log.config.sample_every
    sample_step = max(sample_milestones) * sample_every if sample_milestones and sample_every else None
    data = {"last_step": last, "planned_steps": planned, "log_every": log_every, "last_sample_step": sample_step}
    reached = f"The last step line is {format_number(last)} of {format_number(planned)} planned ({last / planned:.2%})."
    sample = (f" The sample of milestone {max(sample_milestones)} is step {format_number(sample_step)} "
              f"({max(sample_milestones)} × `sample_every` {format_number(sample_every)})") if sample_step else ""
    if sample_step is not None and sample_step >= planned:
        return Finding(
            code="run_reached_plan",
            title=(f"The log stops at step {format_number(last)}, "
                   f"but the run reached its {format_number(planned)} steps"),
            evidence=reached + sample + f": the run got there, and its last steps fell between two log lines "
            f"(one every {format_number(log_every)} steps).",
            data=data | {"conclusive": True},
        )
    if sample_step is not None and sample_step > last:
        return Finding(
            code="run_ended_early",
            title=f"The log ends at step {format_number(last)} of {format_number(planned)}, the run went on",
            evidence=reached + sample + ", later than the last logged step: the run went on beyond this log (a "
            "resumed run writes a new log file); its end is in the later log.",
            data=data | {"conclusive": False},
        )
    if planned - last <= log_every:
        return Finding(
            code="run_ended_early",
            title=f"The log stops at step {format_number(last)} of {format_number(planned)}",
            evidence=(
                reached + f" With one line every {format_number(log_every)} steps, a run that counts its steps "
                f"from 0 prints its last line at {format_number(last)} even when it completes: the log alone cannot "
                "show whether the remaining steps ran; the final checkpoint or sample can."
            ),
            data=data | {"conclusive": False},
        )
    return Finding(
        code="run_ended_early",
        title="The run ended before its planned total",
        evidence=(
            reached + f" {format_number(planned - last)} steps ({1 - last / planned:.1%}) were never logged: the run "
            "stopped (crash, time limit or a kill) without reaching its plan, and its last checkpoint is not the "
            "final model."
        ),
        data=data | {"conclusive": True},
    )


CHECKS: list[Callable[[TrainingLog, Analysis], Finding | None]] = [
    discriminator_never_trained,
    adaptive_weight_at_clamp,
    negative_total_loss,
    learning_rate_unreadable,
    non_finite_values,
    reconstruction_loss_rising,
]


def diagnose(log: TrainingLog, analysis: Analysis, sample_milestones: Sequence[int] = ()) -> list[Finding]:
    """The findings of every check, in the order of :data:`CHECKS`, then the run's length against its plan
    (``sample_milestones``: the milestones of the sample images found next to the log)."""
    findings = [finding for check in CHECKS if (finding := check(log, analysis)) is not None]
    length = run_ended_early(log, analysis, sample_milestones)
    return findings + ([length] if length is not None else [])
