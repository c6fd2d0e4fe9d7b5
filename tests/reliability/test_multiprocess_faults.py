"""Two processes on CPU (gloo) under torchrun: a dead or stalled rank stops the run with a clear message, never a hang."""

import subprocess
import sys
import time

import pytest

from tests.helpers.tiny_runs import REPO, subprocess_env, tiny_training_overrides
from radiodiff.training.checkpoints import list_checkpoints

COLLECTIVE_TIMEOUT_S = 10
# imports of two processes on a loaded 2-core machine, the timeout, torchrun's teardown, and a margin
BOUND_S = 150


def run_with_a_faulty_rank(fault: str, output_dir, cache) -> tuple[subprocess.CompletedProcess, float, str]:
    """torchrun 2 processes of train_vae.py whose rank 1 fails before step 3; returns rank 0's stderr too."""
    rank_logs = output_dir.parent / "rank-logs"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--log-dir", str(rank_logs), "--redirects", "3",
        str(REPO / "tests" / "helpers" / "faulty_rank_worker.py"),
        *tiny_training_overrides(output_dir, cache),
        "train.batch_size=2", "train.max_steps=20", "train.save_every=2", "train.sample_every=100",
        f"train.collective_timeout_s={COLLECTIVE_TIMEOUT_S}",
    ]
    start = time.monotonic()
    result = subprocess.run(
        command, env={**subprocess_env(), "RADIODIFF_TEST_FAULT": fault}, capture_output=True, text=True,
        timeout=BOUND_S,
    )
    (rank0_stderr,) = rank_logs.glob("*/attempt_0/0/stderr.log")
    return result, time.monotonic() - start, rank0_stderr.read_text()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.mark.slow
def test_a_killed_rank_stops_the_other_with_a_clear_message(tmp_path, synthetic_cache):
    output_dir = tmp_path / "run"
    result, _, rank0 = run_with_a_faulty_rank("kill", output_dir, synthetic_cache)

    assert result.returncode != 0
    assert "exitcode  : -9" in result.stderr  # torchrun's report names the killed rank
    assert "Traceback" not in rank0
    (message,) = error_lines(rank0)
    assert "process 0 of 2: another process of the run died, or stalled" in message
    assert "checkpoint-2, is intact (continue with --resume latest)" in message
    assert [step for step, _ in list_checkpoints(output_dir)] == [2]


@pytest.mark.slow
def test_a_stalled_rank_times_the_collectives_out_instead_of_hanging(tmp_path, synthetic_cache):
    output_dir = tmp_path / "run"
    result, elapsed, rank0 = run_with_a_faulty_rank("stall", output_dir, synthetic_cache)

    assert result.returncode != 0
    assert "Traceback" not in rank0
    (message,) = error_lines(rank0)
    assert f"longer than train.collective_timeout_s ({COLLECTIVE_TIMEOUT_S} s)" in message
    assert "Timed out" in message
    assert elapsed > COLLECTIVE_TIMEOUT_S
