"""Every sentence the report writes is true of the run it describes: claims that depend on the run appear only
for runs where they hold."""

from PIL import Image

from radiodiff.report import write_report
from radiodiff.report.analysis import analyse
from radiodiff.report.diagnosis import diagnose
from radiodiff.report.figures import training_phases
from radiodiff.report.parse import parse_log

from tests.helpers.report_logs import FIXTURE_LOG, write_run


def total_loss_panel_title(log_path) -> str:
    log = parse_log(log_path)
    analysis = analyse(log)
    return training_phases(log, analysis, diagnose(log, analysis, [])).axes[0].get_title()


def write_samples(folder, milestones) -> None:
    folder.mkdir(parents=True)
    for milestone in milestones:
        Image.new("L", (8, 8)).save(folder / f"sample-{milestone}.png")


def test_the_total_loss_title_blames_the_adversarial_term_only_where_it_dominates(tmp_path):
    healthy = write_run(tmp_path / "logs" / "healthy_.log")
    assert total_loss_panel_title(healthy) == "Total loss"
    assert total_loss_panel_title(FIXTURE_LOG) == (
        "Total loss: negative at 990 steps because the adversarial term below outweighs the reconstruction"
    )


def test_sheets_with_the_ground_truth_are_not_called_style_without_accuracy(tmp_path):
    healthy = write_run(tmp_path / "run" / "logs" / "healthy_.log")
    write_samples(tmp_path / "run" / "samples", [1, 2])
    text = write_report(healthy, tmp_path / "report").markdown_path.read_text()
    assert "style, not accuracy" not in text and "sign follows" not in text
    assert "beside their reconstructions and errors" in text


def test_the_original_trainers_reconstructions_are_called_style_not_accuracy(tmp_path):
    write_samples(tmp_path / "samples", [5])
    text = write_report(FIXTURE_LOG, tmp_path / "report", tmp_path / "samples").markdown_path.read_text()
    assert "reconstructions alone: without the ground-truth maps beside them they show style, not accuracy" in text


def test_without_samples_nothing_is_said_about_them(tmp_path):
    text = write_report(write_run(tmp_path / "healthy_.log"), tmp_path / "report").markdown_path.read_text()
    assert "accuracy" not in text
