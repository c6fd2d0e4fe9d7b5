"""End-to-end training on tiny configs: what lands on disk, exact resume, multi-process, faults."""

import errno
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from conftest import REPO, assert_same_weights, read_exported_weights, subprocess_env, tiny_training_overrides
from radiodiff.config import load_config, read_config
from radiodiff.training import CheckpointError, TrainingError, train
from radiodiff.training.checkpoints import list_checkpoints

STEP_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[Train Step\] (\d+)/(\d+): (.*), $")


@pytest.mark.slow
def test_accelerate_launch_writes_every_artifact(tmp_path, synthetic_cache):
    output_dir = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
               str(REPO / "train_vae.py"), "--config", str(REPO / "configs/quickstart.yaml"),
               *tiny_training_overrides(output_dir, synthetic_cache), "data.augment=dihedral"]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    assert [step for step, _ in list_checkpoints(output_dir)] == [4, 8]
    assert sorted(p.name for p in (output_dir / "samples").iterdir()) == ["sample-1.png", "sample-2.png"]
    assert (output_dir / "config.yaml").is_file() and (output_dir / "training_summary.json").is_file()
    assert (output_dir / "README.md").is_file()  # the model card
    assert load_config(output_dir / "config.yaml").train.max_steps == 8
    metrics = json.loads((output_dir / "metrics.json").read_text())  # the end-of-run evaluation
    assert (metrics["split"], metrics["variant"]) == ("val", "ema")
    assert metrics["metrics"]["nmse"]["mean"] > 0 and (output_dir / "per_image.csv").is_file()
    # as many training maps as validation ones, read as they are (the augmented set is 8 times longer)
    train_subset = metrics["train_subset"]
    assert (train_subset["split"], train_subset["num_maps"]) == ("train", metrics["num_maps"])
    assert train_subset["gap"]["psnr"] == pytest.approx(
        train_subset["metrics"]["psnr"]["mean"] - metrics["metrics"]["psnr"]["mean"])
    assert "training subset (" in result.stdout and "of the training split" in (output_dir / "README.md").read_text()

    maps = torch.rand(2, 1, 32, 32) * 2 - 1
    plain = AutoencoderKL.from_pretrained(output_dir / "vae").eval()
    ema = AutoencoderKL.from_pretrained(output_dir / "vae", variant="ema").eval()
    # the scaling factor was measured on training latents, not left at the configured 0.3
    assert plain.config.scaling_factor != 0.3 and len(plain.config.latents_std) == 3
    with torch.no_grad():
        assert plain(maps).sample.shape == maps.shape
        assert not torch.equal(plain(maps).sample, ema(maps).sample)
    assert (output_dir / "discriminator" / "diffusion_pytorch_model.safetensors").is_file()

    (log_file,) = (output_dir / "logs").glob("*_.log")
    lines = log_file.read_text().splitlines()
    assert json.loads(lines[0].split(" ", 2)[2])["train"]["max_steps"] == 8
    steps = [STEP_LINE.match(line) for line in lines[1:] if "[Train Step]" in line]
    assert all(steps)
    generator = [m for m in steps if "train/total_loss" in m.group(3)]
    discriminator = [m for m in steps if "train/disc_loss" in m.group(3)]
    assert [int(m.group(1)) for m in generator] == [2, 4, 6, 8]
    assert [int(m.group(1)) for m in discriminator] == [6, 8]  # disc_start 5
    assert re.search(r"lr: \d\.\d{3}e-\d\d$", generator[0].group(3))


def test_resume_ends_with_the_same_weights_as_a_straight_run(tmp_path, synthetic_cache):
    straight = tmp_path / "straight"
    train(load_config(None, tiny_training_overrides(straight, synthetic_cache)))

    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    train(load_config(None, tiny_training_overrides(resumed, synthetic_cache)), resume="latest")

    assert_same_weights(read_exported_weights(resumed), read_exported_weights(straight))


@pytest.mark.slow
def test_two_processes_keep_identical_weights(tmp_path, synthetic_cache):
    output_dir = tmp_path / "ddp"
    output_dir.mkdir()
    overrides = tiny_training_overrides(output_dir, synthetic_cache) + ["train.batch_size=2", "loss.learn_logvar=true"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               str(REPO / "tests" / "distributed_worker.py"), str(output_dir), *overrides]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(output_dir / "rank0.safetensors"), load_file(output_dir / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # the learned log-variance, outside the DDP-wrapped VAE, moved and stayed the same on both ranks
    assert rank0["loss.logvar"].item() != 0.0
    assert any("discriminator" in key for key in rank0)


def test_original_radiodiff_yaml_trains(tmp_path, synthetic_cache):
    config, notes = read_config(REPO / "configs/radiodiff_original_first_stage.yaml",
                                tiny_training_overrides(tmp_path / "original", synthetic_cache))
    assert notes
    output_dir = train(config)
    assert (output_dir / "vae" / "config.json").is_file()


def test_nonfinite_losses_skip_steps_and_a_persistent_nan_stops_cleanly(tmp_path, synthetic_cache, monkeypatch):
    from radiodiff.losses import VAEGANLoss

    original = VAEGANLoss.generator_loss
    poisoned_steps = {2} | set(range(5, 100))

    def poisoned(self, gain_map, reconstruction, posterior, step, *args, **kwargs):
        loss, logs = original(self, gain_map, reconstruction, posterior, step, *args, **kwargs)
        return (loss * float("nan"), logs) if step in poisoned_steps else (loss, logs)

    monkeypatch.setattr(VAEGANLoss, "generator_loss", poisoned)
    output_dir = tmp_path / "nan"
    config = load_config(None, tiny_training_overrides(output_dir, synthetic_cache) + ["train.max_nonfinite_steps=3"])
    with pytest.raises(TrainingError, match="3 steps in a row had non-finite losses"):
        train(config)
    checkpoints = list_checkpoints(output_dir)
    assert [step for step, _ in checkpoints] == [4]
    state = json.loads((checkpoints[0][1] / "trainer_state.json").read_text())
    assert state["skipped_steps"] == 1
    weights = load_file(checkpoints[0][1] / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (output_dir / "vae").exists()
    log_text = next((output_dir / "logs").glob("*_.log")).read_text()
    assert "[Train Step] 3/8: skipped step: non-finite loss" in log_text


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, synthetic_cache, monkeypatch):
    from accelerate import Accelerator

    original = Accelerator.save_state
    calls = []

    def disk_full_on_second_save(self, output_dir=None, **kwargs):
        calls.append(output_dir)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", disk_full_on_second_save)
    output_dir = tmp_path / "full"
    with pytest.raises(CheckpointError, match="No space left on device.*checkpoint-4, is intact"):
        train(load_config(None, tiny_training_overrides(output_dir, synthetic_cache)))
    assert [step for step, _ in list_checkpoints(output_dir)] == [4]
    assert not list((output_dir / "checkpoints").glob(".tmp-*"))


def test_a_run_ends_with_a_model_card_and_pushes_when_asked(tmp_path, synthetic_cache, monkeypatch):
    import radiodiff.training.trainer as trainer_module

    pushed = []
    monkeypatch.setattr(trainer_module, "push_to_hub", lambda output_dir, repo_id: pushed.append((output_dir, repo_id)) or "url")
    output_dir = tmp_path / "card"
    overrides = tiny_training_overrides(output_dir, synthetic_cache) + [
        "train.max_steps=2", "train.push_to_hub=true", "train.hub_repo_id=someone/radio-vae"]
    train(load_config(None, overrides))
    card = (output_dir / "README.md").read_text()
    assert "library_name: diffusers" in card and "someone/radio-vae" in card
    assert pushed == [(str(output_dir), "someone/radio-vae")]
