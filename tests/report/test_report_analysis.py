"""The numbers in training_analysis.json and training_data_parsed.csv, checked against computations made
independently from the raw log text (a regex, ``statistics`` and ``datetime``), not with the parser."""

from __future__ import annotations

import csv
import json
import re
import statistics
from datetime import datetime, timedelta

import pytest
from tests.helpers.report_logs import FIXTURE_LOG, LogWriter, healthy_steps, write_run

from radiodiff.report import write_report
from radiodiff.report.analysis import analyse
from radiodiff.report.parse import parse_log
from radiodiff.report.writer import write_csv

LINE = re.compile(r"^(\S+ \S+) \[Train Step\] (\d+)/(\d+): (.*), $")


def raw_steps(path) -> list[tuple[str, int, dict[str, float]]]:
    """(timestamp, step, values) of every complete step line, straight from the text."""
    found = []
    for line in path.read_text().splitlines():
        match = LINE.match(line)
        if match and "skipped" not in match.group(4):
            values = {key: float(value) for key, value in (item.split(": ") for item in match.group(4).split(", "))}
            found.append((match.group(1), int(match.group(2)), values))
    return found


def expected_stats(values: list[float]) -> dict[str, float]:
    return {"count": len(values), "mean": statistics.fmean(values), "std": statistics.stdev(values),
            "min": min(values), "max": max(values), "final": values[-1]}


def assert_stats(actual: dict, values: list[float]) -> None:
    expected = expected_stats(values)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixture_report")
    result = write_report(FIXTURE_LOG, out)
    return result, json.loads(result.json_path.read_text())


def test_fixture_extent_duration_and_speed_match_the_timestamps(fixture_report):
    _, analysis = fixture_report
    lines = raw_steps(FIXTURE_LOG)
    first, last = (datetime.strptime(lines[i][0], "%Y-%m-%d %H:%M:%S,%f") for i in (0, -1))
    hours = (last - first).total_seconds() / 3600
    assert (analysis["steps"], analysis["first_step"], analysis["last_step"]) == (1150, 35000, 149900)
    assert analysis["planned_steps"] == 150000 and analysis["disc_start"] == 50001
    assert analysis["duration_hours"] == pytest.approx(hours) == pytest.approx(5 + 51 / 60 + 38 / 3600)
    assert analysis["steps_per_hour"] == pytest.approx((149900 - 35000) / hours)


def test_fixture_statistics_of_every_quantity_match_an_independent_computation(fixture_report):
    _, analysis = fixture_report
    lines = raw_steps(FIXTURE_LOG)
    for name in lines[0][2]:
        assert_stats(analysis["quantities"][name], [values[name] for _, _, values in lines])
        assert analysis["quantities"][name]["nonfinite"] == 0
    assert analysis["quantities"]["train/total_loss"]["mean"] == pytest.approx(-984.3478, abs=1e-4)
    assert analysis["quantities"]["train/total_loss"]["std"] == pytest.approx(1126.2016, abs=1e-4)


def test_fixture_phases_split_at_disc_start(fixture_report):
    _, analysis = fixture_report
    lines = raw_steps(FIXTURE_LOG)
    before, after = analysis["phases"]
    assert (before["name"], before["steps"], before["first_step"], before["last_step"]) == (
        "before_disc_start", 151, 35000, 50000)
    assert (after["name"], after["steps"], after["first_step"], after["last_step"]) == (
        "from_disc_start", 999, 50100, 149900)
    before_values = [values for _, step, values in lines if step < 50001]
    after_values = [values for _, step, values in lines if step >= 50001]
    for phase, selected in ((before, before_values), (after, after_values)):
        for name in ("train/total_loss", "train/rec_loss", "train/nll_loss", "train/kl_loss"):
            assert_stats(phase["quantities"][name], [values[name] for values in selected])


def test_fixture_pixels_per_map_is_256_squared(fixture_report):
    _, analysis = fixture_report
    assert analysis["pixels_per_map"] == pytest.approx(256 * 256, rel=1e-3)


def test_fixture_csv_has_one_row_per_step_with_the_logged_values(fixture_report):
    result, _ = fixture_report
    lines = raw_steps(FIXTURE_LOG)
    with open(result.csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:3] == ["step", "total_steps", "timestamp"]
    assert list(rows[0])[3:] == list(lines[0][2])
    assert len(rows) == len(lines) == 1150
    for row, (stamp, step, values) in zip(rows, lines):
        assert int(row["step"]) == step and row["total_steps"] == "150000"
        assert row["timestamp"] == stamp.replace(" ", "T").replace(",", ".")
        assert {key: float(row[key]) for key in values} == values


def test_our_log_csv_merges_discriminator_values_and_leaves_missing_cells_empty(tmp_path):
    log = parse_log(write_run(tmp_path / "logs" / "2026-11-24-07-12_.log"))
    write_csv(log, tmp_path / "steps.csv")
    with open(tmp_path / "steps.csv", newline="") as handle:
        rows = {int(row["step"]): row for row in csv.DictReader(handle)}
    assert len(rows) == 20
    assert rows[500]["train/disc_loss"] == ""
    assert float(rows[1100]["train/disc_loss"]) == pytest.approx(healthy_steps()[10]["disc_loss"], rel=1e-5)
    assert analyse(log).quantities["train/disc_loss"].count == 10


def test_non_finite_values_are_counted_and_left_out_of_the_statistics(tmp_path):
    rows = healthy_steps()
    rows[3] = {**rows[3], "rec_loss": float("nan")}
    rows[7] = {**rows[7], "rec_loss": float("inf")}
    stats = analyse(parse_log(write_run(tmp_path / "run.log", rows))).quantities["train/rec_loss"]
    finite = [float(f"{row['rec_loss']:.6g}") for i, row in enumerate(rows) if i not in (3, 7)]
    assert stats.nonfinite == 2 and stats.count == 20
    assert stats.mean == pytest.approx(statistics.fmean(finite))
    assert stats.final == finite[-1]


def test_a_resumed_log_reports_two_runs_and_time_without_the_gap(tmp_path):
    rows = healthy_steps()
    writer = LogWriter(tmp_path / "run.log")
    writer.config()
    writer.run(rows[:10])
    # the resumed run restarts from step 800, ten hours later
    writer.delay = timedelta(hours=10)
    writer.config()
    writer.run(rows[7:])
    analysis = analyse(parse_log(writer.write()))
    assert analysis.runs == 2
    # 100..1000 and 800..2000 at 0.5 s per step; the ten hours between the runs are not training
    assert analysis.duration_hours == pytest.approx((900 + 1200) * 0.5 / 3600)
    assert analysis.steps_per_hour == pytest.approx((900 + 1200) / analysis.duration_hours)
