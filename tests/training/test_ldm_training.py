"""The second stage's trainer end to end on tiny configs: what lands on disk, the exported pipeline, exact resume,
two processes, encoded vs on-the-fly latents, and the bad inputs that must stop with one error line."""

import json
import re
import shutil
import subprocess

import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
from safetensors.torch import load_file

from tests.helpers.tiny_runs import (
    REPO, STEP_LINE, TINY_VAE, launch_command, subprocess_env, tiny_loop_overrides, two_process_command,
)
from radiodiff import RadioDiffPipeline, RadioDiffVAE
from radiodiff.config import FrozenVAEConfig, read_ldm_config
from radiodiff.schedulers import RegressionScheduler, formulation_of
from radiodiff.training import main_ldm, train_ldm
from radiodiff.training.checkpoints import list_checkpoints

PIPELINE_WEIGHTS = ("unet", "condition_encoder", "vae")


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    """A first-stage vae/ folder as the first stage exports it: plain weights and a different ``ema`` variant."""
    folder = tmp_path_factory.mktemp("first-stage") / "vae"
    torch.manual_seed(0)
    vae = RadioDiffVAE.from_block_channels(**TINY_VAE)
    vae.save_pretrained(folder)
    with torch.no_grad():
        for parameter in vae.parameters():
            parameter.mul_(0.9)
    vae.save_pretrained(folder, variant="ema")
    return folder


def tiny_ldm_overrides(output_dir, cache_dir, vae_dir) -> list[str]:
    """A seconds-long CPU run of the tiny preset on 32x32 synthetic maps."""
    return [
        f"output_dir={output_dir}",
        f"vae.path={vae_dir}",
        "denoiser.preset=tiny",
        *tiny_loop_overrides(cache_dir),
        "diffusion.sampling_steps=2",
    ]


def ldm_config(*overrides):
    return read_ldm_config(None, list(overrides))[0]


def pipeline_weights(output_dir, components=PIPELINE_WEIGHTS) -> dict[str, torch.Tensor]:
    weights = {}
    for component in components:
        stored = load_file(output_dir / "pipeline" / component / "diffusion_pytorch_model.safetensors")
        weights.update({f"{component}.{k}": v for k, v in stored.items()})
    return weights


def assert_same(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], **tolerance) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], **(tolerance or dict(rtol=0, atol=0)), msg=key)


@pytest.mark.slow
def test_accelerate_launch_train_ldm_writes_every_artifact(tmp_path, synthetic_cache, vae_dir):
    output_dir = tmp_path / "run"
    command = launch_command("train_ldm.py", "configs/ldm_quickstart.yaml", tiny_ldm_overrides(output_dir, synthetic_cache, vae_dir))
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    assert [step for step, _ in list_checkpoints(output_dir)] == [4, 8]
    assert sorted(p.name for p in (output_dir / "samples").iterdir()) == ["sample-1.png", "sample-2.png"]
    config = read_ldm_config(output_dir / "config.yaml")[0]
    assert (config.train.max_steps, config.denoiser.preset) == (8, "tiny")
    summary = json.loads((output_dir / "training_summary.json").read_text())
    assert summary["steps"] == 8 and set(summary["parameters"]) == {"unet", "condition_encoder"}
    # the end-of-run evaluation of the exported pipeline, with both reference rows, and the card
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert (metrics["split"], metrics["num_inference_steps"]) == ("val", 2)
    assert all(metrics["rows"][row]["metrics"]["nmse"]["mean"] > 0 for row in ("model", "vae_ceiling", "physics_baseline"))
    assert (output_dir / "per_image.csv").is_file()
    assert "library_name: diffusers" in (output_dir / "README.md").read_text()

    (log_file,) = (output_dir / "logs").glob("*_.log")
    lines = log_file.read_text().splitlines()
    assert json.loads(lines[0].split(" ", 2)[2])["denoiser"]["preset"] == "tiny"
    steps = [STEP_LINE.match(line) for line in lines[1:] if "[Train Step]" in line]
    assert all(steps) and [int(m.group(1)) for m in steps] == [2, 4, 6, 8]
    assert all("train/loss_c" in m.group(3) and "train/loss_eps" in m.group(3) for m in steps)

    # the frozen VAE is in no checkpoint; the trained modules and the EMA are
    checkpoint = list_checkpoints(output_dir)[-1][1]
    trained = load_file(checkpoint / "model.safetensors")
    assert {key.split(".")[0] for key in trained} == {"unet", "condition_encoder"}
    ema = load_file(checkpoint / "ema" / "diffusion_pytorch_model.safetensors")

    # pipeline/: the EMA weights as the denoiser, the VAE's own EMA variant (variant: auto) beside them
    exported = pipeline_weights(output_dir)
    for key, value in ema.items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=0, msg=key)
    assert any(not torch.equal(exported[key], trained[key]) for key in trained)
    first_stage = AutoencoderKL.from_pretrained(vae_dir, variant="ema")
    for key, value in first_stage.state_dict().items():
        torch.testing.assert_close(exported[f"vae.{key}"], value, rtol=0, atol=0, msg=key)

    pipe = RadioDiffPipeline.from_pretrained(output_dir / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    buildings = torch.zeros(32, 32)
    buildings[4:12, 8:20] = 1.0
    # the run's diffusion.sampling_steps are the folder's default
    assert pipe.config.default_num_inference_steps == 2
    maps = pipe(buildings, (20, 24), generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert maps.shape == (1, 1, 32, 32) and torch.isfinite(maps).all()


def test_resume_ends_with_the_same_weights_as_a_straight_run(tmp_path, synthetic_cache, vae_dir):
    straight = tmp_path / "straight"
    train_ldm(ldm_config(*tiny_ldm_overrides(straight, synthetic_cache, vae_dir), "denoiser.condition_dropout=0.3"))

    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    train_ldm(ldm_config(*tiny_ldm_overrides(resumed, synthetic_cache, vae_dir), "denoiser.condition_dropout=0.3"),
              resume="latest")

    assert_same(pipeline_weights(resumed), pipeline_weights(straight))
    final = "checkpoints/checkpoint-8/model.safetensors"
    assert_same(load_file(resumed / final), load_file(straight / final))


def test_encoded_latents_train_like_latents_encoded_on_the_fly(tmp_path, synthetic_cache, vae_dir):
    from radiodiff.data import build_dataset
    from radiodiff.evaluation import load_vae
    from radiodiff.latents import encode_latents

    overrides = tiny_ldm_overrides(tmp_path / "on-the-fly", synthetic_cache, vae_dir) + ["train.max_steps=4"]
    on_the_fly = train_ldm(ldm_config(*overrides))
    config = ldm_config(*overrides)
    latents_dir = tmp_path / "latents"
    encode_latents(load_vae(vae_dir, "ema"), build_dataset(config.data, "train", with_conditions=True), latents_dir,
                   batch_size=4, device="cpu")
    encoded = train_ldm(ldm_config(*overrides, f"output_dir={tmp_path / 'encoded'}", "latents.source=encoded",
                                   f"latents.dir={latents_dir}"))
    other_seed = train_ldm(ldm_config(*overrides, f"output_dir={tmp_path / 'seed'}", "train.seed=7"))

    # the same posterior draws from the same generator: equal up to the encoder's float rounding across batchings
    reference = pipeline_weights(on_the_fly)
    assert_same(pipeline_weights(encoded), reference, rtol=1e-4, atol=1e-5)
    # ...a margin far below what a different draw of the training noise makes
    differs = pipeline_weights(other_seed)
    assert max((differs[k] - reference[k]).abs().max() for k in reference if k.startswith("unet")) > 1e-3


def test_flow_matching_trains_and_exports_a_flow_matching_pipeline(tmp_path, synthetic_cache, vae_dir):
    output_dir = train_ldm(ldm_config(*tiny_ldm_overrides(tmp_path / "flow", synthetic_cache, vae_dir),
                                      "denoiser.formulation=flow_matching", "train.max_steps=2", "vae.variant=null"))
    pipe = RadioDiffPipeline.from_pretrained(output_dir / "pipeline")
    assert isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler) and formulation_of(pipe.scheduler).name == "flow_matching"
    assert pipe.unet.config.out_channels == pipe.vae.config.latent_channels
    # vae.variant null: the plain first-stage weights
    plain = AutoencoderKL.from_pretrained(vae_dir)
    torch.testing.assert_close(pipe.vae.state_dict(), plain.state_dict(), rtol=0, atol=0)


def logged_losses(output_dir) -> list[float]:
    (log_file,) = (output_dir / "logs").glob("*_.log")
    steps = [STEP_LINE.match(line) for line in log_file.read_text().splitlines() if "[Train Step]" in line]
    return [float(re.search(r"train/loss: ([\d.e+-]+),", m.group(3)).group(1)) for m in steps]


def test_direct_regression_learns_a_fixed_set_and_its_pipeline_decodes_the_one_prediction(
    tmp_path, synthetic_cache, vae_dir
):
    output_dir = train_ldm(ldm_config(
        *tiny_ldm_overrides(tmp_path / "regression", synthetic_cache, vae_dir), "denoiser.formulation=regression",
        "data.augment=none", "train.max_steps=40", "train.lr_schedule=constant", "train.log_every=1",
        "train.save_every=40", "train.sample_every=40", "train.evaluate_at_end=false",
    ))
    losses = logged_losses(output_dir)
    # x0 is a posterior sample of an untrained VAE, whose noise no regression fits: the loss falls, in a few steps,
    # from the initial weights' to that floor (measured: 0.21 to 0.12)
    assert len(losses) == 40 and sum(losses[-10:]) / 10 < 0.7 * losses[0]

    pipe = RadioDiffPipeline.from_pretrained(output_dir / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    assert isinstance(pipe.scheduler, RegressionScheduler)
    assert pipe.unet.config.out_channels == pipe.vae.config.latent_channels
    buildings = torch.zeros(1, 1, 32, 32)
    buildings[..., 4:12, 8:20] = 1.0
    transmitter = torch.zeros(1, 1, 32, 32)
    transmitter[..., 24, 20] = 1.0
    maps = pipe(buildings, transmitter, generator=torch.Generator().manual_seed(0), output_type="pt").images
    with torch.no_grad():
        condition = pipe.condition_encoder(buildings, transmitter)
        side = 32 // pipe.vae_scale_factor
        latent = torch.zeros(1, pipe.vae.config.latent_channels, side, side)
        prediction = pipe.unet(torch.cat([latent, condition], dim=1), 0).sample
        decoded = pipe.vae.decode(prediction / pipe.vae.config.scaling_factor + (pipe.vae.config.shift_factor or 0.0))
    assert torch.equal(maps, pipe.image_processor.postprocess(decoded.sample, output_type="pt"))


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_the_vae_is_frozen_and_only_the_denoiser_and_condition_encoder_train(tmp_path, synthetic_cache, vae_dir, optimizer):
    from radiodiff.training.ldm_trainer import build_ldm_trainer

    overrides = tiny_ldm_overrides(tmp_path / "frozen", synthetic_cache, vae_dir)
    trainer = build_ldm_trainer(ldm_config(*overrides, f"train.optimizer={optimizer}"))
    expected = {"adamw": ["denoiser.adamw"], "muon": ["denoiser.muon", "denoiser.adamw"]}[optimizer]
    assert list(trainer.parts.optimizers) == expected
    vae_before = {k: v.clone() for k, v in trainer.vae.state_dict().items()}
    trained_before = {k: v.clone() for k, v in trainer.raw_model.state_dict().items()}
    assert trainer.train_step(trainer.micro_batches()) is not None
    assert not any(p.requires_grad for p in trainer.vae.parameters()) and not trainer.vae.training
    optimizers = [trained.optimizer for trained in trainer.parts.optimizers.values()]
    optimized = [id(p) for o in optimizers for group in o.param_groups for p in group["params"]]
    assert sorted(optimized) == sorted(id(p) for p in trainer.raw_model.parameters())
    assert all(torch.equal(v, vae_before[k]) for k, v in trainer.vae.state_dict().items())
    moved = {k.split(".")[0] for k, v in trainer.raw_model.state_dict().items() if not torch.equal(v, trained_before[k])}
    assert moved == {"unet", "condition_encoder"}
    trainer.accelerator.end_training()


def test_compile_compiles_every_unet_level_regionally(tmp_path, synthetic_cache, vae_dir):
    from radiodiff.training.ldm_trainer import build_ldm_trainer

    # the UNet is a plain diffusers UNet2DModel, which names no repeated blocks of its own: the trainer's module does
    trainer = build_ldm_trainer(ldm_config(*tiny_ldm_overrides(tmp_path / "compiled", synthetic_cache, vae_dir),
                                           "train.compile=true"))
    unet = trainer.raw_model.unet
    assert not isinstance(trainer.model, torch._dynamo.eval_frame.OptimizedModule)
    assert all(block._compiled_call_impl is not None for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks])
    assert unet.conv_out._compiled_call_impl is None and trainer.raw_model.condition_encoder._compiled_call_impl is None
    trainer.accelerator.end_training()


@pytest.mark.slow
def test_two_processes_keep_identical_weights(tmp_path, synthetic_cache, vae_dir):
    output_dir = tmp_path / "ddp"
    output_dir.mkdir()
    overrides = tiny_ldm_overrides(output_dir, synthetic_cache, vae_dir) + ["train.batch_size=2", "train.max_steps=4"]
    command = two_process_command("ldm", output_dir, overrides)
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(output_dir / "rank0.safetensors"), load_file(output_dir / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and any(key.startswith("ema.") for key in rank0)
    assert_same(rank1, rank0)
    # each process draws its own training noise (seed + rank), and each stream is checkpointed
    checkpoint = list_checkpoints(output_dir)[-1][1]
    streams = [load_file(checkpoint / f"generator_{rank}.safetensors")["state"] for rank in (0, 1)]
    assert not torch.equal(*streams)


def test_a_hub_id_loads_the_vae_subfolder_with_its_ema_variant(monkeypatch, tiny_vae):
    from radiodiff.training.ldm_trainer import load_frozen_vae

    calls = []

    def from_pretrained(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return tiny_vae

    monkeypatch.setattr(AutoencoderKL, "from_pretrained", from_pretrained)
    vae = load_frozen_vae(FrozenVAEConfig(path="someone/radio-vae"))
    assert calls == [("someone/radio-vae", dict(variant="ema", subfolder="vae", use_safetensors=True))]
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())


def run_and_read_error(argv, capsys) -> str:
    capsys.readouterr()
    assert main_ldm(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: "), error
    return error[0]


def test_no_vae_at_the_path_is_one_error_line(tmp_path, synthetic_cache, vae_dir, capsys):
    overrides = tiny_ldm_overrides(tmp_path / "run", synthetic_cache, vae_dir) + [f"vae.path={tmp_path / 'missing'}"]
    assert f"vae.path {tmp_path / 'missing'}: no VAE there" in run_and_read_error(overrides, capsys)
    assert "vae.path: required" in run_and_read_error(["vae.path=", "denoiser.preset=tiny"], capsys)


def test_maps_of_another_size_than_the_vae_s_are_one_error_line(tmp_path, synthetic_cache, vae_dir, capsys):
    big_vae = tmp_path / "vae64"
    RadioDiffVAE.from_block_channels(**{**TINY_VAE, "sample_size": 64}).save_pretrained(big_vae)
    overrides = tiny_ldm_overrides(tmp_path / "run", synthetic_cache, big_vae)
    message = run_and_read_error(overrides, capsys)
    assert "maps of 32x32, but the VAE at vae.path is for 64x64 maps" in message


def test_a_checkpoint_of_a_run_on_a_vae_with_other_latent_channels_is_one_error_line(
    tmp_path, synthetic_cache, vae_dir, capsys
):
    output_dir = tmp_path / "run"
    overrides = tiny_ldm_overrides(output_dir, synthetic_cache, vae_dir) + ["train.max_steps=2", "train.save_every=2"]
    assert main_ldm(overrides) == 0
    wide_vae = tmp_path / "vae4"
    RadioDiffVAE.from_block_channels(**TINY_VAE, latent_channels=4).save_pretrained(wide_vae)
    message = run_and_read_error(["--resume", "latest", *overrides, f"vae.path={wide_vae}"], capsys)
    assert "its denoiser takes 3 latent channels, but the VAE at vae.path" in message and "has 4" in message


def test_latents_of_another_vae_or_with_conditions_of_another_size_are_one_error_line(
    tmp_path, synthetic_cache, vae_dir, capsys
):
    from radiodiff.data import build_dataset
    from radiodiff.latents import encode_latents

    config = ldm_config(*tiny_ldm_overrides(tmp_path / "run", synthetic_cache, vae_dir))
    maps = build_dataset(config.data, "train", with_conditions=True)
    other_vae = RadioDiffVAE.from_block_channels(**TINY_VAE, latent_channels=4)
    encode_latents(other_vae, maps, tmp_path / "other", batch_size=4, device="cpu")
    overrides = tiny_ldm_overrides(tmp_path / "run", synthetic_cache, vae_dir) + ["latents.source=encoded"]
    message = run_and_read_error([*overrides, f"latents.dir={tmp_path / 'other'}"], capsys)
    assert "latents shaped [4, 16, 16], but the VAE at vae.path makes [3, 16, 16]" in message

    class Resized(torch.utils.data.Dataset):  # conditions of 16x16 beside 32x32 maps
        def __len__(self):
            return len(maps)

        def __getitem__(self, index):
            item = dict(maps[index])
            for name in ("buildings", "transmitter"):
                item[name] = item[name][:, ::2, ::2]
            return item

    encode_latents(RadioDiffVAE.from_pretrained(vae_dir), Resized(), tmp_path / "small", batch_size=4, device="cpu")
    message = run_and_read_error([*overrides, f"latents.dir={tmp_path / 'small'}"], capsys)
    assert "conditions shaped [1, 16, 16]; expected [1, 32, 32]" in message
    message = run_and_read_error([*overrides, f"latents.dir={tmp_path / 'none'}"], capsys)
    assert "not a `radiodiff encode-latents` folder" in message


def test_the_shipped_second_stage_configs_are_the_paper_s_and_the_quickstart_s():
    from radiodiff.config import load_vae_config

    paper = read_ldm_config(REPO / "configs/radiodiff_ldm.yaml")[0]
    assert (paper.denoiser.preset, paper.denoiser.formulation, paper.diffusion.sampling_steps) == ("paper", "radiodiff", 5)
    assert (paper.train.lr, paper.train.min_lr, paper.train.lr_schedule, paper.train.max_steps) == (5e-5, 5e-6, "poly", 50000)
    assert (paper.train.weight_decay, paper.train.max_grad_norm, paper.train.use_ema) == (1e-4, 1.0, True)
    assert paper.vae.path == load_vae_config(REPO / "configs/radiodiff_vae.yaml").output_dir + "/vae"

    quickstart = read_ldm_config(REPO / "configs/ldm_quickstart.yaml")[0]
    first_stage = load_vae_config(REPO / "configs/quickstart.yaml")
    assert quickstart.denoiser.preset == "tiny" and quickstart.vae.path == first_stage.output_dir + "/vae"
    assert quickstart.data == first_stage.data  # the maps the quickstart VAE was trained on
