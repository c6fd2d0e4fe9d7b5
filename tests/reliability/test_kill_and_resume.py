"""kill -9 or Ctrl-C at random points and inside a checkpoint write: ``--resume latest`` ends with the weights of
an uninterrupted run, bit for bit, although that run wrote checkpoints and sample sheets at other steps."""

import random
import signal
import time

import pytest
from safetensors.torch import load_file

from tests.helpers.tiny_runs import assert_same_weights, read_exported_weights, tiny_training_overrides
from radiodiff.training.checkpoints import STATE_FILE, list_checkpoints, resolve_resume
from tests.helpers.training_processes import INSIDE_CHECKPOINT_WRITE, TrainingProcess, logged_step_lines

MAX_STEPS = 12
# a checkpoint every 3 steps, samples every 4, the discriminator from step 5, EMA every 2: a kill can land in any
RUN = [f"train.max_steps={MAX_STEPS}", "train.save_every=3", "train.log_every=1", "train.sample_every=4",
       "train.checkpoints_total_limit=2"]
KILLS_PER_RUN = 2


def resumable_run(output_dir, cache) -> list[str]:
    return ["--resume", "latest", *tiny_training_overrides(output_dir, cache), *RUN]


@pytest.fixture(scope="module")
def uninterrupted_weights(tmp_path_factory, synthetic_cache):
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    # other checkpoint and sample steps than the interrupted runs: neither may shift the training's randomness
    other_cadence = ["train.save_every=5", "train.sample_every=7"]
    run = TrainingProcess(resumable_run(output_dir, synthetic_cache) + other_cadence, output_dir / "stderr.txt")
    assert run.wait() == 0, run.stderr()[-3000:]
    return read_exported_weights(output_dir)


def newest_checkpoint_step(output_dir) -> int:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1][0] if checkpoints else 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_kill_9_at_random_points_then_resume_latest_ends_with_the_uninterrupted_weights(
    seed, tmp_path, synthetic_cache, uninterrupted_weights
):
    rng = random.Random(seed)
    output_dir = tmp_path / "killed"
    argv = resumable_run(output_dir, synthetic_cache)
    for _ in range(KILLS_PER_RUN):
        resumed_from = newest_checkpoint_step(output_dir)
        if resumed_from > MAX_STEPS - 3:
            break  # the last kill landed after the final checkpoint (in the export): no steps left to kill in
        # past the step the run resumes from, and early enough that the kill lands before the run ends
        kill_after = rng.randint(resumed_from + 1, MAX_STEPS - 2)
        seen = logged_step_lines(output_dir, kill_after) if (output_dir / "logs").is_dir() else 0
        run = TrainingProcess(argv, tmp_path / "stderr.txt")
        run.wait_until(lambda: logged_step_lines(output_dir, kill_after) > seen, f"step {kill_after}")
        time.sleep(rng.uniform(0.0, 0.3))  # anywhere in the next step, sample sheet or checkpoint write
        run.kill()
        # a kill loses at most the steps since the newest checkpoint, and never an earlier checkpoint
        assert newest_checkpoint_step(output_dir) >= resumed_from

    final = TrainingProcess(argv, tmp_path / "stderr.txt")
    assert final.wait() == 0, final.stderr()[-3000:]
    assert_same_weights(read_exported_weights(output_dir), uninterrupted_weights)
    assert not list((output_dir / "checkpoints").glob(".tmp-*"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_ctrl_c_at_a_random_step_then_resume_latest_ends_with_the_uninterrupted_weights(
    seed, tmp_path, synthetic_cache, uninterrupted_weights
):
    output_dir = tmp_path / "interrupted"
    argv = resumable_run(output_dir, synthetic_cache)
    stop_after = random.Random(seed).randint(1, MAX_STEPS - 2)
    run = TrainingProcess(argv, tmp_path / "stderr.txt")
    run.wait_until(lambda: logged_step_lines(output_dir, stop_after) > 0, f"step {stop_after}")
    run.process_signal(signal.SIGINT)
    assert run.wait() == 130, run.report()
    # the stop checkpointed the step it ended at, whether or not save_every asked for one there
    stopped_at = newest_checkpoint_step(output_dir)
    assert stopped_at >= stop_after and f"stopped at step {stopped_at}; checkpoint saved" in run.stderr()

    final = TrainingProcess(argv, tmp_path / "stderr.txt")
    assert final.wait() == 0, final.stderr()[-3000:]
    assert_same_weights(read_exported_weights(output_dir), uninterrupted_weights)


@pytest.mark.slow
def test_a_kill_inside_a_checkpoint_write_leaves_the_previous_checkpoint_to_resume_from(
    tmp_path, synthetic_cache, uninterrupted_weights
):
    output_dir = tmp_path / "killed"
    argv = resumable_run(output_dir, synthetic_cache)
    run = TrainingProcess(argv, tmp_path / "stderr.txt", hold_checkpoint_step=6)
    run.wait_until((tmp_path / INSIDE_CHECKPOINT_WRITE).exists, "the checkpoint write of step 6")
    run.kill()

    half_written = output_dir / "checkpoints" / ".tmp-checkpoint-6"
    assert (half_written / "model.safetensors").is_file() and not (half_written / STATE_FILE).exists()
    assert [step for step, _ in list_checkpoints(output_dir)] == [3]
    assert resolve_resume(output_dir, "latest") == output_dir / "checkpoints" / "checkpoint-3"
    assert load_file(output_dir / "checkpoints" / "checkpoint-3" / "model.safetensors")

    final = TrainingProcess(argv, tmp_path / "stderr.txt")
    assert final.wait() == 0, final.stderr()[-3000:]
    logs = "".join(log.read_text() for log in (output_dir / "logs").glob("*.log"))
    assert f"Resumed from {output_dir / 'checkpoints' / 'checkpoint-3'} at step 3" in logs
    assert_same_weights(read_exported_weights(output_dir), uninterrupted_weights)
    assert not half_written.exists()
