"""Read a training log, ours or the original RadioDiff trainer's, into one row per step.

Both trainers log with ``'%(asctime)-15s %(message)s'``. A run starts with its config on one line (JSON for
ours, a Python dict literal for the original), then prints ``[Train Step] STEP/TOTAL: key: value, ...,`` for
the generator and, once the discriminator trains, a second line with the same step for the discriminator.
Anything else (other loggers, free text, a truncated last line) is counted, never fatal.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

STEP_PREFIX = "[Train Step] "
SKIPPED_STEP = "skipped step"
# a discriminator update logs these; a line carrying any of them is a discriminator line
DISCRIMINATOR_KEYS = ("train/disc_loss", "train/logits_real", "train/logits_fake")
LR_KEY = "lr"

# where each setting sits in our config (JSON) and in the original's config dict
_CONFIG_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "disc_start": (("loss", "disc_start"), ("model", "lossconfig", "disc_start")),
    "planned_steps": (("train", "max_steps"), ("trainer", "train_num_steps")),
    "lr": (("train", "lr"), ("trainer", "lr")),
    "min_lr": (("train", "min_lr"), ("trainer", "min_lr")),
    "log_every": (("train", "log_every"), ("trainer", "log_freq")),
    "kl_weight": (("loss", "kl_weight"), ("model", "lossconfig", "kl_weight")),
    "disc_weight": (("loss", "disc_weight"), ("model", "lossconfig", "disc_weight")),
    "batch_size": (("train", "batch_size"), ("data", "batch_size")),
    "sample_every": (("train", "sample_every"), ("trainer", "save_and_sample_every")),
}


@dataclass(frozen=True)
class RunConfig:
    """The settings a report needs, from either trainer's config line; None where the line lacks them."""

    disc_start: int | None = None
    planned_steps: int | None = None
    lr: float | None = None
    min_lr: float | None = None
    log_every: int | None = None
    kl_weight: float | None = None
    disc_weight: float | None = None
    batch_size: int | None = None
    # both trainers name a sample after its milestone, step // sample_every
    sample_every: int | None = None
    # "json" (our trainer), "python-literal" (the original) or None when the run has no config line
    syntax: str | None = None


@dataclass
class Run:
    """One training run in the log: a config line (or the log's start) up to the next one or a step going back."""

    index: int
    line_number: int
    config: RunConfig
    step_lines: int = 0
    first_step: int | None = None
    last_step: int | None = None
    first_timestamp: str | None = None
    last_timestamp: str | None = None


@dataclass
class LineCounts:
    """What each line of the log turned out to be."""

    total: int = 0
    blank: int = 0
    config: int = 0
    generator: int = 0
    discriminator: int = 0
    skipped_step: int = 0
    # timestamped lines that are not steps or configs: "Saved checkpoint ...", warnings, ...
    other_messages: int = 0
    # lines without the logger's timestamp: other loggers, tracebacks, progress bars
    foreign: int = 0
    # step lines cut short (no trailing ", "), e.g. the last line of a killed run
    truncated: int = 0
    # step or config lines whose numbers or syntax could not be read
    malformed: int = 0


@dataclass
class LearningRatePrint:
    """How the log printed ``lr``: fixed-point text such as ``0.00000`` hides small learning rates."""

    tokens: int = 0
    fixed_point: int = 0
    # the fewest decimals among fixed-point tokens: their resolution is 10**-decimals
    fixed_point_decimals: int | None = None


@dataclass
class TrainingLog:
    """A parsed log: one row per step (latest run wins), the runs, and what was counted on the way."""

    path: Path
    runs: list[Run]
    steps: np.ndarray
    total_steps: np.ndarray
    timestamps: list[str]
    # the logged names in order of first appearance; NaN where a step lacks the value (see ``present``)
    columns: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    counts: LineCounts
    skipped_steps: list[int]
    # steps logged by an earlier run and logged again after a resume or restart
    relogged_steps: int
    # generator (or discriminator) lines lacking a key that other lines of their kind carry, per key
    missing_keys: dict[str, int]
    learning_rate_print: LearningRatePrint = field(default_factory=LearningRatePrint)

    @property
    def config(self) -> RunConfig:
        """The latest run's config: a resumed run's settings are the ones its steps were trained with."""
        for run in reversed(self.runs):
            if run.config.syntax is not None:
                return run.config
        return RunConfig()

    def values(self, name: str) -> np.ndarray:
        """The logged values of ``name`` at the steps that have it (non-finite values included)."""
        return self.columns[name][self.present[name]]

    def steps_with(self, name: str) -> np.ndarray:
        return self.steps[self.present[name]]


class _Malformed(ValueError):
    pass


def _lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = values
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _number(value: Any, kind: type) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return kind(value)
    if isinstance(value, str):
        try:
            return kind(float(value))
        except ValueError:
            return None
    return None


def run_config_from_dict(values: Mapping[str, Any], syntax: str) -> RunConfig:
    """The report's settings from either trainer's config dict; keys it lacks stay None."""
    found: dict[str, Any] = {}
    for name, paths in _CONFIG_PATHS.items():
        kind = float if name in ("lr", "min_lr", "kl_weight", "disc_weight") else int
        for path in paths:
            number = _number(_lookup(values, path), kind)
            if number is not None:
                found[name] = number
                break
    return RunConfig(**found, syntax=syntax)


def parse_config_line(message: str) -> RunConfig:
    """A config line: JSON (ours), else a Python dict literal (the original), never ``eval``."""
    try:
        return run_config_from_dict(json.loads(message), "json")
    except (json.JSONDecodeError, TypeError):
        pass
    try:
        values = ast.literal_eval(message)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise _Malformed(f"config line is neither JSON nor a Python literal: {error}") from None
    if not isinstance(values, Mapping):
        raise _Malformed(f"config line is a {type(values).__name__}, not a mapping")
    return run_config_from_dict(values, "python-literal")


# a complete step line with its values; a line cut short lacks the trailing ", " and falls to the slow path
STEP_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \[Train Step\] (\d+)/(\d+): (.*), \r?$")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def _step_number(text: str) -> int | None:
    """A step count as the trainers print it (ASCII digits that fit in int64), else None: the line is malformed."""
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


def _iso_timestamp(stamp: str) -> str:
    return f"{stamp[:10]}T{stamp[11:19]}.{stamp[20:23]}"


@dataclass
class _KeySet:
    """The step lines that print one set of keys: read as text, converted to numbers together at the end."""

    keys: tuple[str, ...]
    discriminator: bool
    # where ``lr`` sits among the keys, to read how it was printed
    lr_index: int | None
    # per line: the step, the run's index, the line number, the timestamp, the text after the slash
    steps: list[int] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)
    totals: list[str] = field(default_factory=list)
    # the values of all lines, line after line
    texts: list[str] = field(default_factory=list)

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """The values as a (lines, keys) array, and which lines could be read (the others are malformed)."""
        try:
            values = np.array(self.texts, dtype=np.float64).reshape(len(self.steps), len(self.keys))
            return values, np.ones(len(self.steps), dtype=bool)
        except ValueError:
            return self._values_line_by_line()

    def _values_line_by_line(self) -> tuple[np.ndarray, np.ndarray]:
        width = len(self.keys)
        values = np.full((len(self.steps), width), math.nan)
        readable = np.ones(len(self.steps), dtype=bool)
        for line in range(len(self.steps)):
            try:
                values[line] = [float(text) for text in self.texts[line * width:(line + 1) * width]]
            except ValueError:
                readable[line] = False
        return values, readable


def _latest(rows: np.ndarray, line_numbers: np.ndarray) -> np.ndarray:
    """Indices of the last line (by line number) of each row that has lines, in row order."""
    by_line = np.argsort(line_numbers, kind="stable")
    reversed_rows = rows[by_line][::-1]
    _, first_in_reversed = np.unique(reversed_rows, return_index=True)
    return by_line[len(by_line) - 1 - first_in_reversed]


def _int_array(parts: list[list[int]]) -> np.ndarray:
    return np.concatenate([np.array(part, dtype=np.int64) for part in parts]) if parts else np.zeros(0, np.int64)


def _readable_fields(key_set: _KeySet, readable: np.ndarray) -> list[list]:
    """The key set's (steps, runs, line numbers, timestamps, totals) over its readable lines."""
    fields = [key_set.steps, key_set.runs, key_set.line_numbers, key_set.timestamps, key_set.totals]
    if readable.all():
        return fields
    return [[value for value, ok in zip(field_, readable.tolist()) if ok] for field_ in fields]


class _LogReader:
    """Walks the lines once; step lines take a fast path (one regex and one split), as a log has a million."""

    def __init__(self, path: Path):
        self.path = path
        self.counts = LineCounts()
        self.runs: list[Run] = []
        self.skipped_steps: list[int] = []
        self.key_sets: dict[tuple[str, ...], _KeySet] = {}
        self.lr_print = LearningRatePrint()

    def read(self) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as lines:
            for line_number, line in enumerate(lines, start=1):
                step_line = STEP_LINE.match(line)
                if step_line is None:
                    self.read_other_line(line.rstrip("\r\n"), line_number)
                else:
                    self.read_step_values(*step_line.groups(), line_number)
                self.counts.total = line_number

    def read_other_line(self, line: str, line_number: int) -> None:
        if not line.strip():
            self.counts.blank += 1
        elif TIMESTAMP.match(line) is None:
            self.counts.foreign += 1
        elif line[24:].startswith(STEP_PREFIX):
            self.read_incomplete_step(line[24 + len(STEP_PREFIX):])
        elif line[24:].startswith("{"):
            try:
                self.start_run(line_number, parse_config_line(line[24:]))
                self.counts.config += 1
            except _Malformed:
                self.counts.malformed += 1
        else:
            self.counts.other_messages += 1

    def read_incomplete_step(self, message: str) -> None:
        """A step line without values: a skipped update, or a line cut short."""
        head, sep, body = message.partition(": ")
        step_text, slash, total_text = head.partition("/")
        step = _step_number(step_text)
        if not (sep and slash and step is not None and _step_number(total_text) is not None):
            self.counts.malformed += 1
        elif body.startswith(SKIPPED_STEP):
            self.counts.skipped_step += 1
            self.skipped_steps.append(step)
        else:
            self.counts.truncated += 1

    def start_run(self, line_number: int, config: RunConfig) -> Run:
        run = Run(index=len(self.runs), line_number=line_number, config=config)
        self.runs.append(run)
        return run

    def key_set(self, keys: tuple[str, ...]) -> _KeySet:
        known = self.key_sets.get(keys)
        if known is None:
            discriminator = any(key in DISCRIMINATOR_KEYS for key in keys)
            lr_index = keys.index(LR_KEY) if LR_KEY in keys else None
            known = self.key_sets[keys] = _KeySet(keys, discriminator, lr_index)
        return known

    def read_step_values(self, stamp: str, step_text: str, total_text: str, body: str, line_number: int) -> None:
        parts = body.replace(": ", ", ").split(", ")
        step = _step_number(step_text)
        if len(parts) % 2 or step is None or _step_number(total_text) is None:
            self.counts.malformed += 1
            return
        key_set = self.key_set(tuple(parts[::2]))
        texts = parts[1::2]
        if key_set.lr_index is not None:
            self.note_lr_print(texts[key_set.lr_index])
        run = self.runs[-1] if self.runs else self.start_run(line_number, RunConfig())
        if run.last_step is not None and step < run.last_step:
            # the steps went back without a config line: a restart, trained with the same settings
            run = self.start_run(line_number, run.config)
        run.step_lines += 1
        if run.first_step is None:
            run.first_step = step
        run.last_step = step
        key_set.steps.append(step)
        key_set.runs.append(run.index)
        key_set.line_numbers.append(line_number)
        key_set.timestamps.append(stamp)
        key_set.totals.append(total_text)
        key_set.texts.extend(texts)

    def note_lr_print(self, lr_text: str) -> None:
        self.lr_print.tokens += 1
        if "e" in lr_text or "E" in lr_text or "." not in lr_text:
            return
        self.lr_print.fixed_point += 1
        decimals = len(lr_text) - lr_text.index(".") - 1
        if self.lr_print.fixed_point_decimals is None or decimals < self.lr_print.fixed_point_decimals:
            self.lr_print.fixed_point_decimals = decimals

    def convert(self) -> dict[tuple[str, ...], tuple[_KeySet, np.ndarray, np.ndarray]]:
        """Each key set's values as numbers and its readable lines; counts the lines of each kind."""
        converted = {}
        for keys, key_set in self.key_sets.items():
            values, readable = key_set.values()
            self.counts.malformed += int((~readable).sum())
            if key_set.discriminator:
                self.counts.discriminator += int(readable.sum())
            else:
                self.counts.generator += int(readable.sum())
            converted[keys] = (key_set, values[readable], readable)
        return converted

    def missing_keys(self, converted: dict) -> dict[str, int]:
        missing: Counter[str] = Counter()
        for discriminator in (False, True):
            lines = {keys: int(readable.sum()) for keys, (key_set, _, readable) in converted.items()
                     if key_set.discriminator == discriminator}
            expected = {key for keys in lines for key in keys}
            for keys, count in lines.items():
                for key in expected.difference(keys):
                    missing[key] += count
        return {key: count for key, count in missing.items() if count}

    def result(self) -> TrainingLog:
        converted = self.convert()
        # every readable step line, key set after key set; ``offsets`` says where each key set's lines start
        fields = [_readable_fields(key_set, readable) for key_set, _, readable in converted.values()]
        offsets = np.cumsum([0] + [len(values) for _, values, _ in converted.values()])
        steps, runs, line_numbers = (_int_array([key_set_fields[i] for key_set_fields in fields]) for i in range(3))
        timestamps = [stamp for key_set_fields in fields for stamp in key_set_fields[3]]
        totals = [total for key_set_fields in fields for total in key_set_fields[4]]
        self.stamp_runs(runs, line_numbers, timestamps)
        unique_steps, row_of_line = np.unique(steps, return_inverse=True)
        # a step logged again by a later run (a resume) takes that run's lines only
        latest_run = np.full(unique_steps.size, -1)
        earliest_run = np.full(unique_steps.size, len(self.runs))
        np.maximum.at(latest_run, row_of_line, runs)
        np.minimum.at(earliest_run, row_of_line, runs)
        kept = runs == latest_run[row_of_line]
        # per logged name: the rows, line numbers and values of the kept lines that print it
        pieces: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for index, (keys, (_, values, _)) in enumerate(converted.items()):
            span = slice(offsets[index], offsets[index + 1])
            ok = kept[span]
            for position, name in enumerate(keys):
                pieces.setdefault(name, []).append(
                    (row_of_line[span][ok], line_numbers[span][ok], values[ok, position])
                )
        columns, present = _merge_columns(pieces, unique_steps.size)
        # each row's timestamp and total come from its last line
        last_lines = np.flatnonzero(kept)[_latest(row_of_line[kept], line_numbers[kept])]
        return TrainingLog(
            path=self.path,
            runs=self.runs,
            steps=unique_steps,
            total_steps=np.array([int(totals[i]) for i in last_lines], dtype=np.int64),
            timestamps=[_iso_timestamp(timestamps[i]) for i in last_lines],
            columns=columns,
            present=present,
            counts=self.counts,
            skipped_steps=self.skipped_steps,
            relogged_steps=int((earliest_run < latest_run).sum()),
            missing_keys=self.missing_keys(converted),
            learning_rate_print=self.lr_print,
        )

    def stamp_runs(self, runs: np.ndarray, line_numbers: np.ndarray, timestamps: list[str]) -> None:
        """Each run's first and last step-line timestamps."""
        for run in self.runs:
            lines = np.flatnonzero(runs == run.index)
            if lines.size:
                run.first_timestamp = _iso_timestamp(timestamps[lines[np.argmin(line_numbers[lines])]])
                run.last_timestamp = _iso_timestamp(timestamps[lines[np.argmax(line_numbers[lines])]])


def _merge_columns(
    pieces: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]], n_rows: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One column per logged name from its (rows, line numbers, values) pieces: the generator and discriminator
    lines of a step merge, and a name printed twice for a step keeps its later value."""
    columns, present = {}, {}
    for name, parts in pieces.items():
        rows, line_numbers, values = (np.concatenate(part) for part in zip(*parts))
        latest = _latest(rows, line_numbers)
        columns[name] = np.full(n_rows, math.nan)
        columns[name][rows[latest]] = values[latest]
        present[name] = np.zeros(n_rows, dtype=bool)
        present[name][rows[latest]] = True
    return columns, present


def parse_log(path: str | Path) -> TrainingLog:
    """Parse the training log at ``path``; unreadable lines are counted in ``counts``, never raised."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training log not found")
    reader = _LogReader(path)
    reader.read()
    return reader.result()
