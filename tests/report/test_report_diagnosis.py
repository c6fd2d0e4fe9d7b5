"""Each diagnosis fires on a small log crafted to show it, with its evidence, and stays silent on a healthy run;
on the original run's log they state the facts of that run."""

from __future__ import annotations

import math

import pytest
from tests.helpers.report_logs import FIXTURE_LOG, CONFIG, LogWriter, config_with, healthy_steps, write_run

from radiodiff.report.analysis import analyse
from radiodiff.report.diagnosis import ADAPTIVE_WEIGHT_MAX, diagnose
from radiodiff.report.parse import parse_log


def findings_of(path, sample_milestones=()) -> dict:
    log = parse_log(path)
    return {finding.code: finding for finding in diagnose(log, analyse(log), sample_milestones)}


def active(row: dict) -> bool:
    return row["step"] >= CONFIG["loss"]["disc_start"]


def test_a_healthy_run_has_no_findings(tmp_path):
    assert findings_of(write_run(tmp_path / "run.log")) == {}


def test_clamp_is_the_loss_modules_clamp():
    from radiodiff.losses import ADAPTIVE_WEIGHT_MAX as loss_clamp

    assert ADAPTIVE_WEIGHT_MAX == loss_clamp


def test_no_discriminator_lines_after_disc_start_means_it_never_trained(tmp_path):
    rows = [{**row, "disc_loss": None} for row in healthy_steps()]
    finding = findings_of(write_run(tmp_path / "run.log", rows))["discriminator_never_trained"]
    assert finding.data["steps_from_disc_start"] == 10
    assert finding.data["discriminator_steps_from_disc_start"] == 0
    assert finding.data["steps_with_generator_term"] == 10
    assert "1,001" in finding.evidence and "1,100 to 2,000" in finding.evidence


def test_a_constant_discriminator_loss_means_it_never_trained(tmp_path):
    rows = [{**row, "disc_loss": 1.0} if active(row) else row for row in healthy_steps()]
    finding = findings_of(write_run(tmp_path / "run.log", rows))["discriminator_never_trained"]
    assert finding.title == "The discriminator loss never moves"
    assert finding.data["constant_disc_loss"] == 1.0
    assert finding.data["discriminator_steps_from_disc_start"] == 10


def test_a_run_that_stops_before_disc_start_says_nothing_about_the_discriminator(tmp_path):
    rows = [row for row in healthy_steps() if not active(row)]
    config = config_with(train={"max_steps": 1000})
    findings = findings_of(write_run(tmp_path / "run.log", rows, config))
    assert findings == {}


def test_adaptive_weight_pinned_at_its_clamp_for_most_steps(tmp_path):
    rows = healthy_steps()
    rows = [{**row, "d_weight": 5000.0} if active(row) and row["step"] != 1500 else row for row in rows]
    finding = findings_of(write_run(tmp_path / "run.log", rows))["adaptive_weight_at_clamp"]
    assert finding.data["clamp"] == 5000.0
    assert finding.data["steps_at_clamp_with_adversarial_term"] == 9
    assert finding.data["steps_with_adversarial_term"] == 10
    assert "90.0%" in finding.evidence


def test_adaptive_weight_at_its_clamp_now_and_then_is_not_a_finding(tmp_path):
    rows = [{**row, "d_weight": 5000.0} if row["step"] in (1100, 1200) else row for row in healthy_steps()]
    assert "adaptive_weight_at_clamp" not in findings_of(write_run(tmp_path / "run.log", rows))


def test_negative_total_loss_is_explained_by_the_adversarial_term(tmp_path):
    rows = [{**row, "d_weight": 5000.0, "g_loss": -0.45} if active(row) else row for row in healthy_steps()]
    finding = findings_of(write_run(tmp_path / "run.log", rows))["negative_total_loss"]
    assert finding.data["steps_negative"] == 10
    assert finding.data["first_negative_step"] == 1100
    assert finding.data["steps_dominated_by_adversarial_term"] == 10
    assert finding.data["median_adversarial_term"] == pytest.approx(-2250)
    assert "not a better model" in finding.evidence


def test_negative_total_from_a_negative_nll_is_not_blamed_on_the_adversarial_term(tmp_path):
    rows = [{**row, "logvar": 2.0, "nll_loss": -5.0} for row in healthy_steps()]
    finding = findings_of(write_run(tmp_path / "run.log", rows))["negative_total_loss"]
    assert finding.data["steps_dominated_by_adversarial_term"] == 0
    assert "does not explain it" in finding.evidence


def test_learning_rate_printed_with_five_decimals_cannot_be_read(tmp_path):
    finding = findings_of(write_run(tmp_path / "run.log", lr_format="{:.5f}"))["learning_rate_unreadable"]
    assert finding.data["decimals"] == 5
    assert finding.data["steps_printed_as_zero"] == 20
    assert (finding.data["config_lr"], finding.data["config_min_lr"]) == (5e-6, 5e-7)


def test_learning_rate_printed_in_fixed_point_that_resolves_it_is_fine(tmp_path):
    config = config_with(train={"lr": 0.05, "min_lr": 0.01})
    rows = [{**row, "lr": 0.05 - 0.04 * row["step"] / 2000} for row in healthy_steps(config)]
    assert findings_of(write_run(tmp_path / "run.log", rows, config, lr_format="{:.5f}")) == {}


def test_non_finite_values_and_skipped_steps_are_reported_with_their_steps(tmp_path):
    rows = healthy_steps()
    rows[2] = {**rows[2], "total_loss": math.nan}
    rows[5] = {**rows[5], "kl_loss": math.inf, "total_loss": math.inf}
    writer = LogWriter(tmp_path / "run.log")
    writer.config()
    writer.run(rows)
    writer.message(2000, "[Train Step] 2000/2000: skipped step: non-finite loss (train/total_loss=nan)")
    finding = findings_of(writer.write())["non_finite_values"]
    assert finding.data["columns"] == {"train/total_loss": 2, "train/kl_loss": 1}
    assert finding.data["skipped_steps"] == 1
    assert "steps 300 and 600" in finding.evidence and "step 2,000" in finding.evidence


def test_a_rising_reconstruction_loss_is_found(tmp_path):
    rows = [{**row, "rec_loss": 0.02 + 0.02 * row["step"] / 2000, "nll_loss": (0.02 + 0.02 * row["step"] / 2000) * 1024}
            for row in healthy_steps()]
    finding = findings_of(write_run(tmp_path / "run.log", rows))["reconstruction_loss_rising"]
    assert finding.data["where"] == "over the whole log"
    assert finding.data["rank_correlation"] == pytest.approx(1.0)
    assert finding.data["last_quarter_median"] > 1.5 * finding.data["first_quarter_median"]


def test_a_reconstruction_loss_rising_only_after_disc_start_is_found(tmp_path):
    def rec(step: int) -> float:
        return 0.05 - 0.04 * step / 1000 if step < 1001 else 0.01 + 0.02 * (step - 1000) / 1000

    rows = [{**row, "rec_loss": rec(row["step"]), "nll_loss": rec(row["step"]) * 1024} for row in healthy_steps()]
    finding = findings_of(write_run(tmp_path / "run.log", rows))["reconstruction_loss_rising"]
    assert finding.data["where"].startswith("from `disc_start`")


def test_a_run_that_stops_early_is_found(tmp_path):
    rows = [row for row in healthy_steps() if row["step"] <= 1200]
    finding = findings_of(write_run(tmp_path / "run.log", rows))["run_ended_early"]
    assert finding.data == {"last_step": 1200, "planned_steps": 2000, "log_every": 100, "last_sample_step": None,
                            "conclusive": True}
    assert "800 steps (40.0%)" in finding.evidence


def test_a_log_that_stops_early_while_a_later_sample_exists_says_the_run_went_on(tmp_path):
    path = write_run(tmp_path / "run.log", [row for row in healthy_steps() if row["step"] <= 1200])
    # sample_every is 500: milestone 2 is step 1,000 (inside the log), milestone 3 step 1,500 (past it)
    assert findings_of(path, [1, 2])["run_ended_early"].data["conclusive"] is True
    finding = findings_of(path, [1, 2, 3])["run_ended_early"]
    assert finding.data["last_sample_step"] == 1500 and finding.data["conclusive"] is False
    assert "went on beyond this log" in finding.evidence


@pytest.fixture(scope="module")
def fixture_findings():
    return findings_of(FIXTURE_LOG)


def test_fixture_discriminator_never_trained(fixture_findings):
    data = fixture_findings["discriminator_never_trained"].data
    assert data == {"disc_start": 50001, "steps_from_disc_start": 999, "discriminator_steps_from_disc_start": 0,
                    "discriminator_lines": 0, "steps_with_generator_term": 999}


def test_fixture_adaptive_weight_at_5000_for_most_steps(fixture_findings):
    data = fixture_findings["adaptive_weight_at_clamp"].data
    assert data["clamp"] == 5000.0
    assert (data["steps_at_clamp_with_adversarial_term"], data["steps_with_adversarial_term"]) == (982, 999)
    assert (data["steps_at_clamp"], data["steps_logging_d_weight"]) == (1133, 1150)


def test_fixture_total_negative_after_disc_start_because_of_the_adversarial_term(fixture_findings):
    data = fixture_findings["negative_total_loss"].data
    assert data["steps_negative"] == data["steps_negative_from_disc_start"] == 990
    assert data["first_negative_step"] == 50100
    assert data["steps_dominated_by_adversarial_term"] == 990
    assert data["median_adversarial_term"] < -2000 < -data["median_nll_loss"]


def test_fixture_lr_printed_as_zero_while_config_says_5e6_to_5e7(fixture_findings):
    data = fixture_findings["learning_rate_unreadable"].data
    assert (data["decimals"], data["steps_printed_as_zero"]) == (5, 1150)
    assert (data["config_lr"], data["config_min_lr"]) == (5e-6, 5e-7)


def test_fixture_log_ends_at_149900_of_150000_within_its_last_logging_interval(fixture_findings):
    data = fixture_findings["run_ended_early"].data
    assert data == {"last_step": 149900, "planned_steps": 150000, "log_every": 100, "last_sample_step": None,
                    "conclusive": False}


def test_fixture_sample_of_milestone_30_shows_the_run_reached_150000():
    # the run's reference maps were saved at milestones 5, 12, 20 and 30 (save_and_sample_every 5,000)
    findings = findings_of(FIXTURE_LOG, [5, 12, 20, 30])
    assert "run_ended_early" not in findings
    finding = findings["run_reached_plan"]
    assert finding.data["last_sample_step"] == 150000 and finding.data["last_step"] == 149900
    assert "step 150,000" in finding.evidence


def test_fixture_has_no_non_finite_values_and_a_falling_reconstruction_loss(fixture_findings):
    assert "non_finite_values" not in fixture_findings
    assert "reconstruction_loss_rising" not in fixture_findings
