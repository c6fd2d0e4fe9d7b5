"""End-to-end training on tiny configs: what lands on disk, exact resume, multi-process, faults."""

import errno
import json
import re
import shutil
import subprocess

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from tests.helpers.tiny_runs import (
    REPO, STEP_LINE, assert_same_weights, launch_command, read_exported_weights, reset_accelerate_state,
    subprocess_env, tiny_training_overrides, two_process_command,
)
from radiodiff.config import load_vae_config, read_vae_config
from radiodiff.training import CheckpointError, TrainingError, train_vae
from radiodiff.training.checkpoints import list_checkpoints
from radiodiff.training.trainer import CPU_BF16_PROBES, keep_the_runs_precision



def logged_steps(output_dir) -> list[int]:
    """The steps a run trained, as its text log records them (every ``train.log_every``-th)."""
    lines = [line for log in sorted((output_dir / "logs").glob("*_.log")) for line in log.read_text().splitlines()]
    matches = [STEP_LINE.match(line) for line in lines]
    return [int(match.group(1)) for match in matches if match and "train/total_loss" in match.group(3)]


@pytest.mark.slow
def test_accelerate_launch_writes_every_artifact(tmp_path, synthetic_cache):
    output_dir = tmp_path / "run"
    command = launch_command(
        "train_vae.py", "configs/quickstart.yaml", [*tiny_training_overrides(output_dir, synthetic_cache), "data.augment=dihedral"]
    )
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    assert [step for step, _ in list_checkpoints(output_dir)] == [4, 8]
    assert sorted(p.name for p in (output_dir / "samples").iterdir()) == ["sample-1.png", "sample-2.png"]
    assert (output_dir / "config.yaml").is_file() and (output_dir / "training_summary.json").is_file()
    assert (output_dir / "README.md").is_file()  # the model card
    assert load_vae_config(output_dir / "config.yaml").train.max_steps == 8
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
    # the shift and scale were measured on training latents, not left at the configured 0.3 and no shift
    assert plain.config.scaling_factor != 0.3 and plain.config.shift_factor is not None
    assert plain.config.latents_mean is None and plain.config.latents_std is None
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


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_ends_with_the_same_weights_as_a_straight_run(tmp_path, synthetic_cache, optimizer):
    overrides = [f"train.optimizer={optimizer}"]
    straight = tmp_path / "straight"
    train_vae(load_vae_config(None, tiny_training_overrides(straight, synthetic_cache) + overrides))

    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    train_vae(load_vae_config(None, tiny_training_overrides(resumed, synthetic_cache) + overrides), resume="latest")

    assert_same_weights(read_exported_weights(resumed), read_exported_weights(straight))
    # continued from step 4, not trained again from the start (which would end with the same weights)
    assert logged_steps(straight) == [2, 4, 6, 8] and logged_steps(resumed) == [6, 8]


def test_auto_precision_resumes_in_the_precision_the_run_trained_in(tmp_path, synthetic_cache, monkeypatch, capsys):
    """A bf16 run resumed with `auto` on a machine where `auto` means fp32 continues in bf16, exactly; an explicit
    precision on resume is the user's choice and wins."""
    straight = tmp_path / "straight"
    train_vae(load_vae_config(None, tiny_training_overrides(straight, synthetic_cache) + ["train.mixed_precision=bf16"]))
    state = json.loads((straight / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["mixed_precision"] == "bf16"

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for probe in CPU_BF16_PROBES:  # this machine's `auto`: fp32
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    for name, precision, expected in [("auto", "auto", "bf16"), ("explicit", "'no'", "no")]:
        resumed = tmp_path / name
        (resumed / "checkpoints").mkdir(parents=True)
        shutil.copytree(straight / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
        capsys.readouterr()
        reset_accelerate_state()  # one process, several runs of other precisions
        config = load_vae_config(None, tiny_training_overrides(resumed, synthetic_cache) + [f"train.mixed_precision={precision}"])
        train_vae(config, resume="latest")
        assert json.loads((resumed / "training_summary.json").read_text())["mixed_precision"] == expected
        assert ("continuing in bf16" in capsys.readouterr().out) == (name == "auto")
        assert json.loads((resumed / "checkpoints" / "checkpoint-8" / "trainer_state.json").read_text())[
            "mixed_precision"] == expected
    assert_same_weights(read_exported_weights(tmp_path / "auto"), read_exported_weights(straight))
    key = "vae/diffusion_pytorch_model.safetensors:decoder.conv_out.weight"
    assert not torch.equal(read_exported_weights(tmp_path / "explicit")[key], read_exported_weights(straight)[key])


def test_auto_keeps_this_machines_precision_where_the_runs_bf16_cannot_run(tmp_path, monkeypatch, capsys):
    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 4, "mixed_precision": "bf16"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    config = load_vae_config(None)
    assert keep_the_runs_precision(config, checkpoint).train.mixed_precision == "auto"
    assert "does not support" in capsys.readouterr().out
    keep_the_runs_precision(config, checkpoint, is_main_process=False)
    assert capsys.readouterr().out == ""  # one note per run, not one per process
    # a checkpoint from before the precision was recorded changes nothing
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 4}))
    assert keep_the_runs_precision(config, checkpoint) is config


@pytest.mark.slow
def test_two_processes_keep_identical_weights(tmp_path, synthetic_cache):
    output_dir = tmp_path / "ddp"
    output_dir.mkdir()
    overrides = tiny_training_overrides(output_dir, synthetic_cache) + ["train.batch_size=2", "loss.learn_logvar=true"]
    command = two_process_command("vae", output_dir, overrides)
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(output_dir / "rank0.safetensors"), load_file(output_dir / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # the learned log-variance, outside the DDP-wrapped VAE, moved and stayed the same on both ranks
    assert rank0["loss.logvar"].item() != 0.0
    assert any("discriminator" in key for key in rank0)
    # each process draws its own posterior noise (seed + rank), and each stream is checkpointed
    checkpoint = list_checkpoints(output_dir)[-1][1]
    streams = [load_file(checkpoint / f"generator_{rank}.safetensors")["state"] for rank in (0, 1)]
    assert not torch.equal(*streams)
    # the manifest, written by the main process, names every process's files
    files = json.loads((checkpoint / "trainer_state.json").read_text())["files"]
    assert set(files) == {item.name + ("/" if item.is_dir() else "") for item in checkpoint.iterdir()}
    assert {files[f"random_states_{rank}.pkl"]["process"] for rank in (0, 1)} == {0, 1}

    # two processes resumed from the step-4 checkpoint end with exactly the weights of the straight run
    resumed = tmp_path / "ddp_resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(output_dir / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    resume = f"--resume={resumed / 'checkpoints' / 'checkpoint-4'}"
    command = two_process_command("vae", resumed, [resume, *overrides, f"output_dir={resumed}"])
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        straight, again = (load_file(folder / f"rank{rank}.safetensors") for folder in (output_dir, resumed))
        assert straight.keys() == again.keys()
        for key in straight:
            torch.testing.assert_close(again[key], straight[key], rtol=0, atol=0, msg=f"rank {rank}: {key}")
    # continued from step 4, not trained again from the start (which would end with the same weights)
    assert logged_steps(output_dir) == [2, 4, 6, 8] and logged_steps(resumed) == [6, 8]


def test_original_radiodiff_yaml_trains(tmp_path, synthetic_cache):
    config, notes = read_vae_config(REPO / "configs/radiodiff_original_first_stage.yaml",
                                tiny_training_overrides(tmp_path / "original", synthetic_cache))
    assert notes
    output_dir = train_vae(config)
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
    config = load_vae_config(None, tiny_training_overrides(output_dir, synthetic_cache) + ["train.max_nonfinite_steps=3"])
    with pytest.raises(TrainingError, match="3 steps in a row had non-finite losses"):
        train_vae(config)
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
        train_vae(load_vae_config(None, tiny_training_overrides(output_dir, synthetic_cache)))
    assert [step for step, _ in list_checkpoints(output_dir)] == [4]
    assert not list((output_dir / "checkpoints").glob(".tmp-*"))


def test_a_run_ends_with_a_model_card_and_pushes_when_asked(tmp_path, synthetic_cache, monkeypatch):
    import radiodiff.training.trainer as trainer_module

    pushed = []
    monkeypatch.setattr(trainer_module, "push_to_hub", lambda output_dir, repo_id: pushed.append((output_dir, repo_id)) or "url")
    output_dir = tmp_path / "card"
    overrides = tiny_training_overrides(output_dir, synthetic_cache) + [
        "train.max_steps=2", "train.push_to_hub=true", "train.hub_repo_id=someone/radio-vae"]
    train_vae(load_vae_config(None, overrides))
    card = (output_dir / "README.md").read_text()
    assert "library_name: diffusers" in card and "someone/radio-vae" in card
    assert pushed == [(str(output_dir), "someone/radio-vae")]


def test_checkpoints_and_sample_sheets_do_not_shift_the_training_noise(tmp_path, synthetic_cache):
    # writing a checkpoint (the EMA's save_pretrained builds a model) or a sample sheet may draw from the global RNG
    rare = tmp_path / "rare"
    train_vae(load_vae_config(None, tiny_training_overrides(rare, synthetic_cache) + ["train.save_every=8", "train.sample_every=8"]))
    often = tmp_path / "often"
    train_vae(load_vae_config(None, tiny_training_overrides(often, synthetic_cache) + ["train.save_every=3", "train.sample_every=2"]))
    assert_same_weights(read_exported_weights(often), read_exported_weights(rare))


def test_a_fresh_run_into_a_folder_with_checkpoints_is_refused_with_one_error_line(tmp_path, synthetic_cache, capsys):
    from radiodiff.training import main_vae

    output_dir = tmp_path / "used"
    overrides = tiny_training_overrides(output_dir, synthetic_cache)
    assert main_vae(overrides) == 0
    exported = read_exported_weights(output_dir)
    capsys.readouterr()

    assert main_vae([*overrides, "train.max_steps=2", "train.save_every=1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ")
    assert "checkpoints of an earlier run (steps 4, 8)" in error[0]
    assert "--resume latest" in error[0] and "--overwrite" in error[0]
    # nothing of the earlier run was touched
    assert [step for step, _ in list_checkpoints(output_dir)] == [4, 8]
    assert_same_weights(read_exported_weights(output_dir), exported)


def test_overwrite_replaces_the_earlier_run_and_keeps_every_checkpoint_of_the_new_one(tmp_path, synthetic_cache):
    from radiodiff.training import main_vae

    output_dir = tmp_path / "used"
    overrides = tiny_training_overrides(output_dir, synthetic_cache)
    assert main_vae(overrides) == 0
    stale = output_dir / "evaluation" / "ema-val" / "metrics.json"  # `radiodiff evaluate` of the earlier model
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    assert main_vae(["--overwrite", *overrides, "train.max_steps=2", "train.save_every=1", "train.sample_every=1"]) == 0
    assert not (output_dir / "evaluation").exists()
    assert [step for step, _ in list_checkpoints(output_dir)] == [1, 2]
    assert sorted(p.name for p in (output_dir / "samples").iterdir()) == ["sample-1.png", "sample-2.png"]
    assert json.loads((output_dir / "training_summary.json").read_text())["steps"] == 2
    # and it is the same as a run in an empty folder
    fresh = tmp_path / "fresh"
    assert main_vae([*tiny_training_overrides(fresh, synthetic_cache), "train.max_steps=2", "train.save_every=1"]) == 0
    assert_same_weights(read_exported_weights(output_dir), read_exported_weights(fresh))


@pytest.mark.parametrize("stop_at", [3, 4])
def test_the_stop_path_decides_from_the_run_s_own_state_not_a_directory_listing(
    stop_at, tmp_path, synthetic_cache, monkeypatch
):
    import radiodiff.training.checkpoints as checkpoints_module
    from radiodiff.training.trainer import Trainer

    output_dir = tmp_path / "stopped"
    saved = []
    monkeypatch.setattr(Trainer, "stop_requested", lambda self, stop: self.state.step == stop_at)
    original_save = checkpoints_module.save_checkpoint

    def recording_save(accelerator, output_dir, state, *args):
        saved.append(state.step)
        return original_save(accelerator, output_dir, state, *args)

    monkeypatch.setattr("radiodiff.training.trainer.save_checkpoint", recording_save)

    def stale_listing(output_dir):  # what a rank on a stale NFS view would see
        return []

    monkeypatch.setattr(checkpoints_module, "list_checkpoints", stale_listing)
    monkeypatch.setattr("radiodiff.training.trainer.list_checkpoints", stale_listing)
    with pytest.raises(KeyboardInterrupt, match=f"stopped at step {stop_at}; checkpoint saved"):
        train_vae(load_vae_config(None, tiny_training_overrides(output_dir, synthetic_cache)))
    # save_every=4: a stop at 4 finds its checkpoint already written, a stop at 3 writes one, each exactly once
    assert saved == [stop_at]


def test_num_sample_images_0_trains_without_sample_sheets(tmp_path, synthetic_cache):
    output_dir = tmp_path / "no-samples"
    train_vae(load_vae_config(None, tiny_training_overrides(output_dir, synthetic_cache) + [
        "train.num_sample_images=0", "train.max_steps=4"]))
    assert (output_dir / "vae" / "config.json").is_file()
    assert not (output_dir / "samples").exists() or not list((output_dir / "samples").iterdir())


def test_a_learned_log_variance_is_checkpointed_as_safetensors_and_nothing_is_unpickled_unrestricted(
    tmp_path, synthetic_cache, monkeypatch
):
    from radiodiff.training.checkpoints import TENSORS_FILE
    from radiodiff.training.vae_trainer import build_vae_trainer

    output_dir = tmp_path / "logvar"
    config = load_vae_config(None, tiny_training_overrides(output_dir, synthetic_cache) + ["loss.learn_logvar=true"])
    train_vae(config)
    checkpoint = list_checkpoints(output_dir)[-1][1]
    # no pickled loss module (with LPIPS's VGG, ~59 MB when the perceptual loss is on)
    assert not list(checkpoint.glob("custom_checkpoint*"))
    stored = load_file(checkpoint / TENSORS_FILE)["loss.logvar"]
    assert stored.item() != 0.0  # it was trained

    loads = []
    original_load = torch.load

    def recording_load(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return original_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    trainer = build_vae_trainer(load_vae_config(None, tiny_training_overrides(output_dir, synthetic_cache) + [
        "loss.learn_logvar=true"]))
    assert trainer.loss_fn.logvar.item() == 0.0
    trainer.resume(checkpoint)
    assert torch.equal(trainer.loss_fn.logvar.detach(), stored)
    # accelerate's optimizer and RNG files are torch.save pickles, read with the restricted unpickler only
    assert loads and all(weights_only is True for weights_only in loads)
    trainer.accelerator.end_training()


def gradients_at_optimizer_steps(config, grad_scaler=None) -> dict[str, torch.Tensor]:
    """Run one real training step and return every gradient as each optimizer's ``step`` sees it."""
    from accelerate.optimizer import AcceleratedOptimizer

    from radiodiff.training.vae_trainer import build_vae_trainer

    trainer = build_vae_trainer(config)
    seen = {}
    names = {id(p): f"vae.{k}" for k, p in trainer.raw_vae.named_parameters()}
    names.update({id(p): f"discriminator.{k}" for k, p in trainer.raw_discriminator.named_parameters()})
    optimizers = trainer.parts.optimizers
    for optimizer in (trained.optimizer for trained in optimizers.values()):
        def recording_step(*args, _optimizer=optimizer.optimizer, _step=optimizer.optimizer.step, **kwargs):
            parameters = [p for group in _optimizer.param_groups for p in group["params"] if p.grad is not None]
            seen.update({names[id(p)]: p.grad.clone() for p in parameters})
            return _step(*args, **kwargs)

        optimizer.optimizer.step = recording_step
    if grad_scaler is not None:
        # what accelerate sets up for fp16 on a GPU; on CPU it makes no scaler, so the test installs one
        accelerator = trainer.accelerator
        accelerator.scaler, accelerator.native_amp, accelerator.state._mixed_precision = grad_scaler, True, "fp16"
        for trained in optimizers.values():
            trained.optimizer = AcceleratedOptimizer(trained.optimizer.optimizer, device_placement=False, scaler=grad_scaler)
        accelerator._optimizers = [trained.optimizer for trained in optimizers.values()]
    assert trainer.train_step(trainer.micro_batches()) is not None
    return seen


@pytest.mark.parametrize("optimizer, max_grad_norm", [("adamw", "1e9"), ("muon", "1e9"), ("muon", "1e-3")])
def test_fp16_with_clipping_unscales_each_optimizer_exactly_once(tmp_path, synthetic_cache, optimizer, max_grad_norm):
    from torch.amp import GradScaler

    # the discriminator from step 0; a clipping norm so large that clipping only unscales, or so small that it
    # clips, over the VAE's Muon and AdamW parameters together, only once both are unscaled
    overrides = tiny_training_overrides(tmp_path / "fp16", synthetic_cache) + [
        "loss.disc_start=0", f"train.max_grad_norm={max_grad_norm}", f"train.optimizer={optimizer}"
    ]
    true_gradients = gradients_at_optimizer_steps(load_vae_config(None, overrides))
    scaled_gradients = gradients_at_optimizer_steps(load_vae_config(None, overrides), GradScaler("cpu", init_scale=2.0**10))
    assert any(name.startswith("discriminator.") for name in true_gradients)
    assert scaled_gradients.keys() == true_gradients.keys()
    for name, gradient in true_gradients.items():
        torch.testing.assert_close(scaled_gradients[name], gradient, msg=name)


def test_compile_is_regional_and_leaves_the_adaptive_weight_s_layer_eager(tmp_path, synthetic_cache):
    from radiodiff.training.vae_trainer import build_vae_trainer

    trainer = build_vae_trainer(load_vae_config(None, tiny_training_overrides(tmp_path / "compiled", synthetic_cache) + [
        "train.compile=true"]))
    vae = trainer.raw_vae
    # a whole-model graph would make each autograd.grad at conv_out run the entire compiled backward
    assert not isinstance(trainer.vae, torch._dynamo.eval_frame.OptimizedModule)
    blocks = [*vae.encoder.down_blocks, vae.encoder.mid_block, vae.decoder.mid_block, *vae.decoder.up_blocks]
    assert all(block._compiled_call_impl is not None for block in blocks)
    assert vae.decoder.conv_out._compiled_call_impl is None and vae.decoder.conv_out.weight is vae.last_layer_weight


def test_resuming_an_earlier_checkpoint_sets_the_abandoned_branch_aside_and_prunes_only_the_new_one(
    tmp_path, synthetic_cache, capsys
):
    output_dir = tmp_path / "branch"
    overrides = tiny_training_overrides(output_dir, synthetic_cache)
    train_vae(load_vae_config(None, overrides))
    abandoned = (output_dir / "checkpoints" / "checkpoint-8" / "trainer_state.json").read_text()
    # resumed from step 4 by path, with the later checkpoint-8 of the first run still in the folder
    resumed = load_vae_config(None, overrides + ["train.max_steps=6", "train.save_every=1", "train.checkpoints_total_limit=2"])
    train_vae(resumed, resume=str(output_dir / "checkpoints" / "checkpoint-4"))
    assert "resuming from step 4: the checkpoints of later steps (8) belong to the branch" in capsys.readouterr().out
    assert [step for step, _ in list_checkpoints(output_dir)] == [5, 6]
    # kept whole, where neither --resume latest nor pruning looks
    (aside,) = (output_dir / "checkpoints").glob("abandoned-4-*")
    assert (aside / "checkpoint-8" / "trainer_state.json").read_text() == abandoned
    # so that --resume latest continues the new branch, not the abandoned one
    train_vae(load_vae_config(None, overrides + ["train.max_steps=7", "train.save_every=1"]), resume="latest")
    assert f"Resumed from {output_dir / 'checkpoints' / 'checkpoint-6'} at step 6" in capsys.readouterr().out
    assert [step for step, _ in list_checkpoints(output_dir)][-1] == 7
