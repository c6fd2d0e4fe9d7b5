"""The stage contract on disk: every checkpoint's ``trainer_state.json`` names what each of its files holds, a resume
refuses a checkpoint whose files hold other parts than the run trains, and a checkpoint written before the manifest
still resumes to exactly the weights it holds."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.amp import GradScaler

from tests.helpers.tiny_runs import TINY_VAE, tiny_loop_overrides, tiny_training_overrides
from radiodiff import RadioDiffVAE
from radiodiff.config import load_vae_config
from radiodiff.training import CheckpointError, main_ldm, train_vae
from radiodiff.training.checkpoints import list_checkpoints
from radiodiff.training.vae_trainer import build_vae_trainer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vae_checkpoint_before_manifest"
# with tiny_training_overrides, the run that wrote FIXTURE (see tests/fixtures/README.md)
VAE_CHECKPOINT_BEFORE_MANIFEST = [
    "model.block_out_channels=[2]", "model.norm_num_groups=1", "discriminator.ndf=4", "discriminator.n_layers=1",
    "data.synthetic.size=16", "train.max_steps=2", "train.save_every=2", "loss.disc_start=1",
    "train.ema_update_every=1", "loss.learn_logvar=true", "train.num_sample_images=0", "train.evaluate_at_end=false",
    "train.latent_scale_maps=0",
]


@pytest.fixture(scope="module")
def cache_16(tmp_path_factory):
    """The fixture run's 16x16 synthetic maps, apart from the session's cache (whose tests expect one size there)."""
    return tmp_path_factory.mktemp("synthetic-cache-16")


def fixture_run_config(output_dir, cache, *overrides):
    overrides = tiny_training_overrides(output_dir, cache) + VAE_CHECKPOINT_BEFORE_MANIFEST + list(overrides)
    return load_vae_config(None, overrides)


def saved_manifest(output_dir, cache, *overrides, grad_scaler=None) -> tuple[Path, dict]:
    """A real checkpoint of the fixture's run at step 0 (no training needed to know what its files hold)."""
    trainer = build_vae_trainer(fixture_run_config(output_dir, cache, *overrides))
    trainer.accelerator.scaler = grad_scaler  # what accelerate sets up for fp16 on a GPU
    path = trainer.save_checkpoint()
    trainer.accelerator.end_training()
    return path, json.loads((path / "trainer_state.json").read_text())["files"]


def test_the_manifest_names_what_every_file_of_a_checkpoint_holds(tmp_path, cache_16):
    path, files = saved_manifest(tmp_path / "run", cache_16)
    on_disk = {item.name + ("/" if item.is_dir() else "") for item in path.iterdir()}
    assert set(files) == on_disk
    assert files["model.safetensors"]["name"] == "vae" and files["model.safetensors"]["class"] == "RadioDiffVAE"
    assert files["model.safetensors"]["config"]["block_out_channels"] == [2]
    assert (files["model_1.safetensors"]["name"], files["model_1.safetensors"]["class"]) == (
        "discriminator", "PatchGANDiscriminator")
    assert files["optimizer.bin"] == {"kind": "optimizer", "name": "vae.adamw", "class": "AdamW", "updates": "vae"}
    assert files["optimizer_1.bin"]["updates"] == "discriminator"
    assert files["trainer_tensors.safetensors"] == {"kind": "extra trained tensors", "names": ["loss.logvar"]}
    assert files["ema/"] == {"kind": "ema", "class": "RadioDiffVAE"}
    assert files["random_states_0.pkl"] == {"kind": "random states", "process": 0}
    assert files["generator_0.safetensors"] == {"kind": "training generator", "process": 0}

    # Muon beside AdamW: the VAE's two optimizers come first, as accelerate numbers their files; fp16's scaler
    path, files = saved_manifest(tmp_path / "muon", cache_16, "train.optimizer=muon", grad_scaler=GradScaler("cpu"))
    assert set(files) == {item.name + ("/" if item.is_dir() else "") for item in path.iterdir()}
    assert files["scaler.pt"] == {"kind": "gradient scaler"}
    optimizers = {name: files[name]["name"] for name in ("optimizer.bin", "optimizer_1.bin", "optimizer_2.bin")}
    assert optimizers == {
        "optimizer.bin": "vae.muon", "optimizer_1.bin": "vae.adamw", "optimizer_2.bin": "discriminator.adamw"
    }


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.use_ema=false", "its ema/ holds the EMA of a RadioDiffVAE, which this run does not train"),
        ("loss.learn_logvar=false",
         "its trainer_tensors.safetensors holds the extra trained tensors loss.logvar, which this run does not train"),
        ("train.optimizer=muon", "its optimizer.bin holds the optimizer vae.adamw (AdamW), where this run keeps the "
                                 "optimizer vae.muon (Muon)"),
    ],
)
def test_a_checkpoint_of_other_parts_than_the_run_trains_is_refused_naming_the_file(
    tmp_path, cache_16, override, message
):
    path, _ = saved_manifest(tmp_path / "run", cache_16)
    trainer = build_vae_trainer(fixture_run_config(tmp_path / "other", cache_16, override))
    with pytest.raises(CheckpointError) as error:
        trainer.resume(path)
    assert str(error.value).startswith(f"{path}: {message}")
    trainer.accelerator.end_training()


def test_a_first_stage_checkpoint_resumed_into_the_second_stage_is_one_error_line(tmp_path, cache_16, capsys):
    path, _ = saved_manifest(tmp_path / "vae-run", cache_16)
    RadioDiffVAE.from_block_channels(**TINY_VAE).save_pretrained(tmp_path / "vae")
    second_stage = [f"output_dir={tmp_path / 'ldm'}", f"vae.path={tmp_path / 'vae'}", "denoiser.preset=tiny"]
    assert main_ldm(["--resume", str(path), *second_stage, *tiny_loop_overrides(cache_16)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {path}: its model.safetensors holds the model vae (RadioDiffVAE), where this run "
                           "keeps the model denoiser (ConditionedDenoiser)")


def test_a_checkpoint_written_before_the_manifest_resumes_to_exactly_the_state_it_holds(tmp_path, cache_16):
    """Files mapped by the order of that version: model.safetensors the VAE, model_1 the discriminator,
    optimizer.bin the VAE's AdamW, optimizer_1.bin the discriminator's."""
    assert "files" not in json.loads((FIXTURE / "trainer_state.json").read_text())
    trainer = build_vae_trainer(fixture_run_config(tmp_path / "run", cache_16))
    trainer.resume(FIXTURE)
    parts = trainer.parts

    assert trainer.state.step == 2
    for name, file in (("vae", "model.safetensors"), ("discriminator", "model_1.safetensors")):
        stored = load_file(FIXTURE / file)
        live = trainer.accelerator.unwrap_model(parts.models[name]).state_dict()
        assert live.keys() == stored.keys()
        assert all(torch.equal(live[key], stored[key]) for key in stored), name
    for name, file in (("vae.adamw", "optimizer.bin"), ("discriminator.adamw", "optimizer_1.bin")):
        stored = torch.load(FIXTURE / file, weights_only=True)["state"]
        live = parts.optimizers[name].optimizer.state_dict()["state"]
        assert live.keys() == stored.keys() and len(stored) > 0
        assert all(torch.equal(live[index][key], stored[index][key]) for index in stored for key in stored[index]), name
    stored_ema = load_file(FIXTURE / "ema" / "diffusion_pytorch_model.safetensors")
    names = [name for name, _ in trainer.raw_vae.named_parameters()]
    assert all(torch.equal(shadow, stored_ema[name]) for name, shadow in zip(names, parts.ema.shadow_params))
    assert not torch.equal(parts.ema.shadow_params[0], next(trainer.raw_vae.parameters()))  # two different files
    logvar = load_file(FIXTURE / "trainer_tensors.safetensors")["loss.logvar"]
    assert torch.equal(parts.extra_trained_tensors["loss.logvar"].detach(), logvar)
    assert torch.equal(trainer.generator.get_state(), load_file(FIXTURE / "generator_0.safetensors")["state"])
    trainer.accelerator.end_training()


def test_a_checkpoint_written_before_the_manifest_trains_on_and_is_rewritten_with_one(tmp_path, cache_16):
    output_dir = tmp_path / "run"
    (output_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(FIXTURE, output_dir / "checkpoints" / "checkpoint-2")
    train_vae(fixture_run_config(output_dir, cache_16, "train.max_steps=4"), resume="latest")

    assert [step for step, _ in list_checkpoints(output_dir)] == [2, 4]
    files = json.loads((output_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())["files"]
    assert files["model.safetensors"]["name"] == "vae" and files["optimizer_1.bin"]["name"] == "discriminator.adamw"
    trained = load_file(output_dir / "vae" / "diffusion_pytorch_model.safetensors")
    before = load_file(FIXTURE / "model.safetensors")
    assert trained.keys() == before.keys() and not all(torch.equal(trained[k], before[k]) for k in before)


def test_a_manifest_that_is_not_one_is_refused_naming_the_file(tmp_path, cache_16):
    path, _ = saved_manifest(tmp_path / "run", cache_16)
    state = json.loads((path / "trainer_state.json").read_text())
    (path / "trainer_state.json").write_text(json.dumps({**state, "files": ["model.safetensors"]}))
    trainer = build_vae_trainer(fixture_run_config(tmp_path / "other", cache_16))
    with pytest.raises(CheckpointError, match=f"^{path / 'trainer_state.json'}: files: expected the manifest"):
        trainer.resume(path)
    trainer.accelerator.end_training()
