"""The log parser: both trainers' formats, merged steps, resumes, and every kind of bad line counted, never fatal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.helpers.report_logs import FIXTURE_LOG, LogWriter, config_with, healthy_steps, write_run

from radiodiff.report.parse import parse_log


@pytest.fixture(scope="module")
def fixture_log():
    return parse_log(FIXTURE_LOG)


def test_original_log_has_one_row_per_step_from_35000_to_149900(fixture_log):
    assert fixture_log.steps.size == 1150
    assert (fixture_log.steps[0], fixture_log.steps[-1]) == (35000, 149900)
    assert np.all(np.diff(fixture_log.steps) == 100)
    assert set(fixture_log.total_steps) == {150000}
    assert fixture_log.timestamps[0] == "2025-08-15T20:41:07.000"
    assert fixture_log.timestamps[-1] == "2025-08-16T02:32:45.000"
    counts = fixture_log.counts
    assert (counts.total, counts.config, counts.generator, counts.discriminator) == (1151, 1, 1150, 0)
    assert counts.malformed == counts.truncated == counts.foreign == counts.other_messages == 0


def test_original_columns_keep_the_logged_names_in_logged_order(fixture_log):
    assert list(fixture_log.columns) == [
        "train/total_loss", "train/logvar", "train/kl_loss", "train/nll_loss", "train/rec_loss",
        "train/d_weight", "train/disc_factor", "train/g_loss", "lr",
    ]
    assert fixture_log.columns["train/total_loss"][0] == 1916.70959
    assert fixture_log.columns["train/d_weight"][-1] == 1777.54565


def test_original_python_literal_config_gives_disc_start_total_and_lr(fixture_log):
    config = fixture_log.config
    assert config.syntax == "python-literal"
    assert (config.disc_start, config.planned_steps, config.log_every) == (50001, 150000, 100)
    assert (config.lr, config.min_lr, config.kl_weight, config.disc_weight) == (5e-6, 5e-7, 1e-6, 0.5)
    assert (config.batch_size, config.sample_every) == (2, 5000)


def test_original_lr_print_is_recorded_as_five_decimals(fixture_log):
    printed = fixture_log.learning_rate_print
    assert (printed.tokens, printed.fixed_point, printed.fixed_point_decimals) == (1150, 1150, 5)


def test_our_json_config_and_formats_are_read(tmp_path):
    log = parse_log(write_run(tmp_path / "logs" / "2026-11-24-07-12_.log"))
    assert log.config.syntax == "json"
    assert (log.config.disc_start, log.config.planned_steps, log.config.lr) == (1001, 2000, 5e-6)
    assert log.steps.tolist() == list(range(100, 2001, 100))
    assert log.counts.generator == 20 and log.counts.discriminator == 10
    assert log.learning_rate_print.fixed_point == 0
    assert log.columns["lr"][0] == pytest.approx(float(f"{healthy_steps()[0]['lr']:.3e}"))


def test_generator_and_discriminator_lines_of_a_step_are_merged(tmp_path):
    log = parse_log(write_run(tmp_path / "run.log"))
    row = int(np.flatnonzero(log.steps == 1100)[0])
    assert log.present["train/rec_loss"][row] and log.present["train/disc_loss"][row]
    expected = healthy_steps()[10]
    assert log.columns["train/disc_loss"][row] == pytest.approx(expected["disc_loss"], rel=1e-5)
    assert log.columns["train/rec_loss"][row] == pytest.approx(expected["rec_loss"], rel=1e-5)
    before = log.steps < 1001
    assert not log.present["train/disc_loss"][before].any()


def test_config_line_is_never_evaluated(tmp_path):
    marker = tmp_path / "evaluated"
    writer = LogWriter(tmp_path / "run.log")
    writer.message(0, "{'trainer': __import__('pathlib').Path(%r).touch()}" % str(marker))
    writer.run(healthy_steps()[:3])
    log = parse_log(writer.write())
    assert not marker.exists()
    assert log.counts.malformed == 1 and log.counts.config == 0
    assert log.steps.size == 3


def test_other_loggers_free_text_and_a_truncated_last_line_are_counted(tmp_path):
    writer = LogWriter(tmp_path / "run.log")
    writer.config()
    writer.raw("WARNING:accelerate.utils:something from another logger")
    writer.raw("Traceback (most recent call last):")
    writer.run(healthy_steps()[:4])
    writer.message(400, "Saved checkpoint to outputs/tiny/checkpoints/checkpoint-400")
    writer.message(400, "Resumed from outputs/tiny/checkpoints/checkpoint-400")
    writer.raw("")
    writer.message(500, "[Train Step] 500/2000: train/total_loss: 51.2, train/logvar: 0, train/kl_lo")
    log = parse_log(writer.write())
    counts = log.counts
    assert (counts.foreign, counts.other_messages, counts.blank, counts.truncated) == (2, 2, 1, 1)
    assert log.steps.tolist() == [100, 200, 300, 400]


def test_a_skipped_step_line_is_counted_with_its_step(tmp_path):
    writer = LogWriter(tmp_path / "run.log")
    writer.config()
    writer.run(healthy_steps()[:2])
    writer.message(300, "[Train Step] 300/2000: skipped step: non-finite loss (train/total_loss=nan)")
    log = parse_log(writer.write())
    assert log.counts.skipped_step == 1 and log.skipped_steps == [300]
    assert log.steps.tolist() == [100, 200]


def test_non_finite_and_exponent_values_are_read(tmp_path):
    rows = healthy_steps()[:3]
    rows[1] = {**rows[1], "total_loss": math.nan, "kl_loss": math.inf, "rec_loss": 1e-7}
    log = parse_log(write_run(tmp_path / "run.log", rows))
    assert math.isnan(log.columns["train/total_loss"][1])
    assert log.columns["train/kl_loss"][1] == math.inf
    assert log.columns["train/rec_loss"][1] == 1e-7
    assert log.present["train/total_loss"].all()


def test_an_unreadable_number_drops_only_its_line(tmp_path):
    writer = LogWriter(tmp_path / "run.log")
    writer.config()
    writer.run(healthy_steps()[:3])
    writer.message(400, "[Train Step] 400/2000: train/total_loss: 1.5, train/rec_loss: ??, lr: 5.000e-06, ")
    log = parse_log(writer.write())
    assert log.counts.malformed == 1
    assert log.steps.tolist() == [100, 200, 300]
    assert log.counts.generator == 3


def test_lines_missing_keys_are_counted_per_key(tmp_path):
    rows = healthy_steps()[:4]
    for index in (1, 2):
        rows[index] = {key: value for key, value in rows[index].items() if key != "kl_loss"}
        rows[index]["total_loss"] = 1.0
    log = parse_log(write_run(tmp_path / "run.log", rows))
    assert log.missing_keys == {"train/kl_loss": 2}
    assert log.present["train/kl_loss"].tolist() == [True, False, False, True]


def test_a_resume_appended_to_the_same_file_keeps_the_latest_run_per_step(tmp_path):
    rows = healthy_steps()
    writer = LogWriter(tmp_path / "run.log")
    writer.config()
    writer.run(rows[:5])
    writer.message(600, "Resumed from outputs/tiny/checkpoints/checkpoint-300")
    writer.config(config_with(train={"lr": 1e-5}))
    writer.run([{**row, "rec_loss": 0.5} for row in rows[2:7]])
    log = parse_log(writer.write())
    assert len(log.runs) == 2
    assert log.relogged_steps == 3
    assert log.steps.tolist() == [100, 200, 300, 400, 500, 600, 700]
    first_run = [rows[0]["rec_loss"], rows[1]["rec_loss"]]
    assert log.columns["train/rec_loss"].tolist()[:2] == pytest.approx(first_run, rel=1e-5)
    assert log.columns["train/rec_loss"].tolist()[2:] == [0.5] * 5
    assert log.config.lr == 1e-5


def test_steps_going_back_without_a_config_line_start_a_new_run(tmp_path):
    rows = healthy_steps()
    writer = LogWriter(tmp_path / "run.log")
    writer.config()
    writer.run(rows[:4])
    writer.run(rows[1:3])
    log = parse_log(writer.write())
    assert [(run.first_step, run.last_step) for run in log.runs] == [(100, 400), (200, 300)]
    assert log.runs[1].config == log.runs[0].config
    assert log.relogged_steps == 2


def test_a_log_without_config_line_still_parses(tmp_path):
    writer = LogWriter(tmp_path / "run.log")
    writer.run(healthy_steps()[:3])
    log = parse_log(writer.write())
    assert log.steps.size == 3 and len(log.runs) == 1
    assert log.config.syntax is None and log.config.disc_start is None


def test_a_missing_log_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.log"):
        parse_log(tmp_path / "nope.log")


def test_config_with_only_some_keys_leaves_the_others_unknown(tmp_path):
    writer = LogWriter(tmp_path / "run.log")
    writer.message(0, '{"train": {"max_steps": 300}}')
    writer.run(healthy_steps(config_with(train={"max_steps": 300}))[:3], total=300)
    log = parse_log(writer.write())
    assert log.config.planned_steps == 300 and log.config.disc_start is None and log.config.lr is None
