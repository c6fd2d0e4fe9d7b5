"""`radiodiff report`: the command on the original log and on our trainer's output folder, what lands on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image
from tests.helpers.report_logs import FIXTURE_LOG, CONFIG, GENERATOR_KEYS, REPO_ROOT, healthy_steps, with_total, write_run

from radiodiff.cli import main
from radiodiff.config import config_from_dict
from radiodiff.report.figures import FIGURE_NAMES

OUTPUTS = ("training_data_parsed.csv", "training_analysis.json", "report.md", *FIGURE_NAMES)


def run_radiodiff(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "radiodiff", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=120)


def save_sample(path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (32, 32), shade).save(path)


def test_report_command_on_the_original_log_writes_every_output(tmp_path):
    done = run_radiodiff("report", str(FIXTURE_LOG), "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    assert "The discriminator never trained" in done.stdout
    for name in OUTPUTS:
        assert (tmp_path / "report" / name).stat().st_size > 0, name
    for name in FIGURE_NAMES:
        with Image.open(tmp_path / "report" / name) as figure:
            assert figure.format == "PNG" and figure.width >= 1000
    report = (tmp_path / "report" / "report.md").read_text()
    for name in FIGURE_NAMES:
        assert f"]({name})" in report
    for title in ("The discriminator never trained", "The adaptive weight sits at its clamp",
                  "The total loss is negative because the adversarial term dominates",
                  "The learning rate was printed too coarsely to read", "The log stops at step 149,900 of 150,000",
                  "What these numbers do not show"):
        assert title in report
    assert "No `sample-<milestone>.png` found" in report


def test_report_on_our_output_folder_shows_samples_from_samples_in_milestone_order(tmp_path):
    output_dir = tmp_path / "outputs" / "tiny"
    log = write_run(output_dir / "logs" / "2026-11-24-07-12_.log")
    for milestone, shade in ((10, 200), (2, 100), (1, 50)):
        save_sample(output_dir / "samples" / f"sample-{milestone}.png", shade)
    assert main(["report", str(log)]) == 0
    report = (output_dir / "logs" / "report" / "report.md").read_text()
    links = [report.index(f"(../../samples/sample-{milestone}.png)") for milestone in (1, 2, 10)]
    assert links == sorted(links)
    assert "| milestone 1 (step 500) | milestone 2 (step 1,000) | milestone 10 (step 5,000) |" in report
    assert "found nothing to report" in report
    for name in OUTPUTS:
        assert (output_dir / "logs" / "report" / name).is_file()


def test_samples_flag_overrides_where_samples_are_looked_for(tmp_path, capsys):
    log = write_run(tmp_path / "run" / "train.log")
    save_sample(tmp_path / "run" / "sample-3.png", 10)
    save_sample(tmp_path / "elsewhere" / "sample-7.png", 20)
    assert main(["report", str(log), "--out", str(tmp_path / "out"), "--samples", str(tmp_path / "elsewhere")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "sample-7.png" in report and "sample-3.png" not in report
    assert "1 samples" in capsys.readouterr().out


def test_a_file_that_is_not_a_training_log_is_a_clear_error(tmp_path, capsys):
    not_a_log = tmp_path / "notes.txt"
    not_a_log.write_text("hello\nworld\n")
    assert main(["report", str(not_a_log), "--out", str(tmp_path / "out")]) == 2
    assert "notes.txt: no '[Train Step]" in capsys.readouterr().err


def test_report_package_imports_neither_torch_nor_the_trainer():
    probe = ("import sys, radiodiff.report, radiodiff.cli; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or 'training' in m))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_report_reads_the_log_our_trainer_writes(tmp_path):
    from radiodiff.training import runlog

    log = runlog.RunLog(tmp_path / "outputs" / "tiny" / "logs", config_from_dict(CONFIG).to_dict())
    for row in map(with_total, healthy_steps()):
        log.step(row["step"], 2000, {key: row[key] for key in GENERATOR_KEYS}, row["lr"])
        if row["disc_loss"] is not None:
            log.step(row["step"], 2000, {key: row[key] for key in ("disc_loss", "logits_real", "logits_fake")},
                     row["lr"])
        if row["step"] == 1000:
            log.note("Saved checkpoint outputs/tiny/checkpoints/checkpoint-1000")
    log.note("[Train Step] 2000/2000: skipped step: non-finite loss")
    log.close()
    assert main(["report", str(log.path), "--out", str(tmp_path / "report")]) == 0
    analysis = json.loads((tmp_path / "report" / "training_analysis.json").read_text())
    assert (analysis["steps"], analysis["disc_start"], analysis["planned_steps"]) == (20, 1001, 2000)
    assert analysis["lines"]["discriminator"] == 10 and analysis["lines"]["other_messages"] == 1
    assert [finding["code"] for finding in analysis["diagnosis"]] == ["non_finite_values"]
