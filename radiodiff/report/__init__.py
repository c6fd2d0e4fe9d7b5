"""``radiodiff report``: a training log (ours or the original RadioDiff trainer's) to a CSV, a JSON summary,
five figures and a Markdown report with a diagnosis. A pure reader: it imports neither torch nor the trainer."""

from .writer import ReportResult, write_report

__all__ = ["ReportResult", "write_report"]
