"""``write_report``: a training log in, the CSV, the JSON, five figures and ``report.md`` out."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .analysis import Analysis, analyse
from .diagnosis import Finding, diagnose
from ..file_names import find_samples
from .figures import write_figures
from .markdown import render_markdown
from .parse import TrainingLog, parse_log

CSV_NAME = "training_data_parsed.csv"
JSON_NAME = "training_analysis.json"
MARKDOWN_NAME = "report.md"


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    csv_path: Path
    json_path: Path
    markdown_path: Path
    figure_paths: list[Path]
    sample_paths: list[Path]
    findings: list[Finding]


def sample_folders(log_path: Path, samples_dir: Path | None) -> list[Path]:
    """Where samples are looked for: ``samples_dir``, else the log's folder (the original trainer) and
    ``../samples`` (ours: ``OUTPUT_DIR/logs/x.log`` next to ``OUTPUT_DIR/samples/``)."""
    if samples_dir is not None:
        return [samples_dir]
    return [log_path.parent, log_path.parent.parent / "samples"]


def write_csv(log: TrainingLog, path: Path) -> None:
    """One row per step: ``step, total_steps, timestamp`` and the logged names; empty where a step lacks one."""
    names = list(log.columns)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "total_steps", "timestamp", *names])
        cells = [[repr(float(value)) if has else "" for value, has in zip(log.columns[name], log.present[name])]
                 for name in names]
        for row, (step, total, stamp) in enumerate(zip(log.steps, log.total_steps, log.timestamps)):
            writer.writerow([int(step), int(total), stamp, *(column[row] for column in cells)])


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN or infinity: such values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def analysis_document(log: TrainingLog, analysis: Analysis, findings: list[Finding]) -> dict[str, Any]:
    return {
        "log": str(log.path),
        **analysis.to_dict(),
        "config": asdict(log.config),
        "lines": asdict(log.counts),
        "relogged_steps": log.relogged_steps,
        "missing_keys": log.missing_keys,
        "skipped_steps": log.skipped_steps,
        "learning_rate_print": asdict(log.learning_rate_print),
        "run_list": [
            {key: value for key, value in asdict(run).items() if key != "config"} for run in log.runs
        ],
        "diagnosis": [asdict(finding) for finding in findings],
    }


def write_report(log_path: str | Path, out_dir: str | Path, samples_dir: str | Path | None = None) -> ReportResult:
    """Parse ``log_path`` and write the CSV, the JSON, the five figures and ``report.md`` into ``out_dir``."""
    log_path, out_dir = Path(log_path), Path(out_dir)
    samples_dir = Path(samples_dir) if samples_dir is not None else None
    if samples_dir is not None and not samples_dir.is_dir():
        raise FileNotFoundError(f"{samples_dir}: samples folder not found")
    log = parse_log(log_path)
    if not log.steps.size:
        raise ValueError(f"{log_path}: no '[Train Step] STEP/TOTAL: key: value, ...' lines in "
                         f"{log.counts.total:,} lines: not a RadioDiff training log")
    out_dir.mkdir(parents=True, exist_ok=True)
    analysis = analyse(log)
    folders = sample_folders(log_path, samples_dir)
    samples = find_samples(folders)
    findings = diagnose(log, analysis, [milestone for milestone, _ in samples])
    csv_path, json_path, markdown_path = out_dir / CSV_NAME, out_dir / JSON_NAME, out_dir / MARKDOWN_NAME
    write_csv(log, csv_path)
    json_path.write_text(json.dumps(_finite_or_none(analysis_document(log, analysis, findings)), indent=2,
                                    allow_nan=False) + "\n")
    figure_paths = write_figures(log, analysis, findings, out_dir)
    markdown_path.write_text(render_markdown(log, analysis, findings, figure_paths, samples, folders, out_dir))
    return ReportResult(out_dir, csv_path, json_path, markdown_path, figure_paths,
                        [path for _, path in samples], findings)
