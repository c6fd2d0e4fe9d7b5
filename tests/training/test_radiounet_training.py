"""RadioUNet trained by the shared loop, end to end on tiny configs: what lands on disk, the exported pipeline that
`radiodiff evaluate` loads, the cascade's two phases, exact resume across the switch, and the bad inputs that must
stop with one error line."""

import json
import re
import shutil
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.tiny_runs import (
    REPO, STEP_LINE, launch_command, subprocess_env, tiny_loop_overrides, two_process_command,
)
from radiodiff.cli import main
from radiodiff.config import load_vae_config, read_ldm_config, read_radiounet_config
from radiodiff.pipelines import RadioUNetPipeline
from radiodiff.training import main_radiounet, train_radiounet
from radiodiff.training.checkpoints import list_checkpoints, stored_model_config

# one U-Net of the quickstart's layout (4 poolings: 32x32 maps reach a 2x2 bottleneck), a few channels wide
TINY_WIDTHS = [
    "model.sample_size=32",
    "model.first_down_channels=[4, 8, 8, 8, 8, 8, 8]",
    "model.first_up_channels=[8, 8, 8, 8, 8, 4]",
    "model.first_head_channels=4",
]
TINY_UNET = ["model.preset=unet", *TINY_WIDTHS]
TINY_CASCADE = [
    "model.preset=quickstart",
    *TINY_WIDTHS,
    "model.second_down_channels=[4, 4, 4, 4, 4, 4, 4]",
    "model.second_up_channels=[4, 4, 4, 4, 4, 4]",
    "model.second_head_channels=4",
]
PIPELINE_WEIGHTS = "pipeline/unet/diffusion_pytorch_model.safetensors"


def tiny_radiounet_overrides(output_dir, cache_dir, model=TINY_UNET) -> list[str]:
    """A seconds-long CPU run on 32x32 synthetic maps: 8 steps, checkpoints and samples every 4."""
    return [f"output_dir={output_dir}", *model, *tiny_loop_overrides(cache_dir)]


def radiounet_config(*overrides):
    return read_radiounet_config(None, list(overrides))[0]


def of_unet(weights: dict[str, torch.Tensor], unet: str) -> dict[str, torch.Tensor]:
    return {key: value for key, value in weights.items() if key.startswith(f"{unet}.")}


def assert_same(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys() and expected
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)


def logged_steps(output_dir) -> list[dict[str, float]]:
    (log_file,) = (output_dir / "logs").glob("*_.log")
    steps = [STEP_LINE.match(line) for line in log_file.read_text().splitlines() if "[Train Step]" in line]
    return [{name: float(value) for name, value in re.findall(r"train/(\w+): ([\d.e+-]+),", m.group(3))}
            for m in steps]


def test_a_tiny_run_writes_every_artifact_and_its_pipeline_loads_and_evaluates(tmp_path, synthetic_cache, capsys):
    output_dir = tmp_path / "run"
    assert main_radiounet(tiny_radiounet_overrides(output_dir, synthetic_cache)) == 0

    checkpoints = list_checkpoints(output_dir)
    assert [step for step, _ in checkpoints] == [4, 8]
    # the manifest names the model and its config, which resume checks
    assert stored_model_config(checkpoints[-1][1], "radiounet")["first_down_channels"] == [4, 8, 8, 8, 8, 8, 8]
    assert sorted(p.name for p in (output_dir / "samples").iterdir()) == ["sample-1.png", "sample-2.png"]
    config = read_radiounet_config(output_dir / "config.yaml")[0]
    assert (config.model.preset, config.train.max_steps) == ("unet", 8)
    summary = json.loads((output_dir / "training_summary.json").read_text())
    assert summary["steps"] == 8 and set(summary["parameters"]) == {"first_unet"}
    steps = logged_steps(output_dir)
    assert len(steps) == 4 and all(step["loss"] > 0 and step["phase"] == 1.0 for step in steps)

    # the end-of-run evaluation: the model and the physics baseline; no VAE, so no ceiling
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert (metrics["split"], metrics["formulation"], metrics["num_inference_steps"]) == ("val", None, None)
    assert metrics["rows"]["vae_ceiling"] is None and metrics["rows"]["model"]["nfe"] == 1
    assert all(metrics["rows"][row]["metrics"]["nmse"]["mean"] > 0 for row in ("model", "physics_baseline"))
    header = (output_dir / "per_image.csv").read_text().splitlines()[0]
    assert "model_nmse" in header and "vae_ceiling" not in header
    card = (output_dir / "README.md").read_text()
    assert "library_name: diffusers" in card and "no VAE, no diffusion" in card and "VAE ceiling |" not in card

    # pipeline/: the EMA weights, which differ from the trained ones
    exported = load_file(output_dir / PIPELINE_WEIGHTS)
    assert_same(exported, load_file(checkpoints[-1][1] / "ema" / "diffusion_pytorch_model.safetensors"))
    trained = load_file(checkpoints[-1][1] / "model.safetensors")
    assert any(not torch.equal(exported[key], trained[key]) for key in trained)
    pipe = RadioUNetPipeline.from_pretrained(output_dir / "pipeline")
    buildings = torch.zeros(32, 32)
    buildings[4:12, 8:20] = 1.0
    maps = pipe(buildings, (20, 24), generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert maps.shape == (1, 1, 32, 32) and torch.isfinite(maps).all()

    # `radiodiff evaluate` reads the run's own config.yaml and scores the maps the trainer scored
    capsys.readouterr()
    assert main(["evaluate", "--model", str(output_dir / "pipeline"), "--batch-size", "3", "--device", "cpu"]) == 0
    assert "one pass (no sampler)" in capsys.readouterr().out
    evaluated = json.loads((output_dir / "evaluation" / "pipeline-val" / "metrics.json").read_text())
    assert evaluated["rows"]["model"]["metrics"]["nmse"]["mean"] == pytest.approx(
        metrics["rows"]["model"]["metrics"]["nmse"]["mean"], rel=1e-5)

    # `radiodiff compare` takes the run folder: one row, without steps, at the run's own training time
    assert main(["compare", str(output_dir), "--split", "val", "--out", str(tmp_path / "compare"),
                 "--device", "cpu"]) == 0
    rows = json.loads((tmp_path / "compare" / "comparison.json").read_text())["rows"]
    (row,) = [row for row in rows if row["kind"] == "pipeline"]
    assert row["num_inference_steps"] is None and "RadioUNetPipeline" in row["label"]
    assert row["training"] == {"total_s": summary["wall_time_s"], "run_s": summary["wall_time_s"]}
    assert not any(row["kind"] == "vae_ceiling" for row in rows)


@pytest.mark.slow
def test_accelerate_launch_train_radiounet_on_the_quickstart_config(tmp_path, synthetic_cache):
    output_dir = tmp_path / "launched"
    command = launch_command("train_radiounet.py", "configs/radiounet_quickstart.yaml",
                             tiny_radiounet_overrides(output_dir, synthetic_cache) + ["train.evaluate_at_end=false"])
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (output_dir / PIPELINE_WEIGHTS).is_file() and [step for step, _ in list_checkpoints(output_dir)] == [4, 8]


def test_the_loss_falls_on_a_tiny_fixed_set(tmp_path, synthetic_cache):
    output_dir = train_radiounet(radiounet_config(
        *tiny_radiounet_overrides(tmp_path / "fit", synthetic_cache), "data.augment=none", "train.max_steps=40",
        "train.lr_schedule=constant", "train.log_every=1", "train.save_every=40", "train.sample_every=40",
        "train.evaluate_at_end=false",
    ))
    losses = [step["loss"] for step in logged_steps(output_dir)]
    assert len(losses) == 40 and sum(losses[-10:]) / 10 < 0.5 * sum(losses[:3]) / 3


def test_a_cascade_switches_phase_at_first_unet_steps_and_phase_two_leaves_the_first_u_net_bit_identical(
    tmp_path, synthetic_cache
):
    output_dir = train_radiounet(radiounet_config(
        *tiny_radiounet_overrides(tmp_path / "cascade", synthetic_cache, TINY_CASCADE), "train.max_steps=6",
        "train.first_unet_steps=3", "train.log_every=1", "train.save_every=1", "train.checkpoints_total_limit=null",
        "train.evaluate_at_end=false",
    ))
    assert [step["phase"] for step in logged_steps(output_dir)] == [1, 1, 1, 2, 2, 2]
    (log_file,) = (output_dir / "logs").glob("*_.log")
    assert "phase 2 at step 4: training the second U-Net" in log_file.read_text()
    weights = [load_file(path / "model.safetensors") for _, path in list_checkpoints(output_dir)]
    first = [of_unet(w, "first_unet") for w in weights]
    second = [of_unet(w, "second_unet") for w in weights]
    # phase 1 (steps 1-3) moves the first U-Net only; phase 2 (steps 4-6) the second only
    for step in (1, 2):
        assert any(not torch.equal(first[step][k], first[step - 1][k]) for k in first[step])
        assert_same(second[step], second[0])
    for step in (3, 4, 5):
        assert_same(first[step], first[2])
        assert any(not torch.equal(second[step][k], second[step - 1][k]) for k in second[step])
    # the EMA takes the frozen first U-Net as it is: the export pairs the second U-Net with the first it learned on
    assert_same(of_unet(load_file(output_dir / PIPELINE_WEIGHTS), "first_unet"), first[-1])


def test_resume_across_the_phase_switch_ends_with_the_weights_of_a_straight_run(tmp_path, synthetic_cache):
    overrides = ["train.first_unet_steps=5", "train.log_every=1", "train.evaluate_at_end=false",
                 "train.num_sample_images=0"]
    straight = tmp_path / "straight"
    train_radiounet(radiounet_config(*tiny_radiounet_overrides(straight, synthetic_cache, TINY_CASCADE), *overrides))

    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    train_radiounet(radiounet_config(*tiny_radiounet_overrides(resumed, synthetic_cache, TINY_CASCADE), *overrides),
                    resume="latest")

    assert [step["phase"] for step in logged_steps(resumed)] == [1, 2, 2, 2]  # steps 5 to 8
    assert_same(load_file(resumed / PIPELINE_WEIGHTS), load_file(straight / PIPELINE_WEIGHTS))
    final = "checkpoints/checkpoint-8/model.safetensors"
    assert_same(load_file(resumed / final), load_file(straight / final))


def test_muon_takes_the_hidden_kernels_and_adamw_the_layers_that_read_the_conditions_or_write_the_map(
    tmp_path, synthetic_cache
):
    from radiodiff.training.radiounet_trainer import build_radiounet_trainer

    trainer = build_radiounet_trainer(radiounet_config(
        *tiny_radiounet_overrides(tmp_path / "muon", synthetic_cache, TINY_CASCADE), "train.optimizer=muon"))
    assert list(trainer.parts.optimizers) == ["radiounet.muon", "radiounet.adamw"]
    names = {id(p): name for name, p in trainer.raw_model.named_parameters()}
    muon, adamw = (
        {names[id(p)] for group in trained.optimizer.param_groups for p in group["params"]}
        for trained in trainer.parts.optimizers.values()
    )
    assert muon | adamw == set(names.values()) and not muon & adamw
    assert "first_unet.down_blocks.1.0.weight" in muon and "second_unet.up_blocks.0.0.weight" in muon
    for edge in ("first_unet.down_blocks.0.0.weight", "first_unet.head.1.0.weight", "second_unet.head.0.0.weight"):
        assert edge in adamw
    assert trainer.train_step(trainer.micro_batches()) is not None
    trainer.accelerator.end_training()


@pytest.mark.slow
def test_two_processes_train_a_cascade_through_both_phases_with_identical_weights(tmp_path, synthetic_cache):
    output_dir = tmp_path / "ddp"
    output_dir.mkdir()
    # each phase leaves one U-Net out of the loss: without find_unused_parameters DDP would fail the step
    overrides = tiny_radiounet_overrides(output_dir, synthetic_cache, TINY_CASCADE) + [
        "train.batch_size=2", "train.max_steps=4", "train.first_unet_steps=2"]
    result = subprocess.run(two_process_command("radiounet", output_dir, overrides), env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(output_dir / "rank0.safetensors"), load_file(output_dir / "rank1.safetensors")
    assert any(key.startswith("second_unet.") for key in rank0) and any(key.startswith("ema.") for key in rank0)
    assert_same(rank1, rank0)


def run_and_read_error(argv, capsys) -> str:
    capsys.readouterr()
    assert main_radiounet(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: "), error
    return error[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["vae.path=outputs/quickstart/vae"], "unknown key vae; valid keys here: output_dir, model, data, train"),
        (["train.disc_lr=1e-4"], "unknown key train.disc_lr"),
        ([*TINY_CASCADE, "train.first_unet_steps=9"],
         "train.first_unet_steps: 9; expected fewer than train.max_steps (8)"),
        (["train.first_unet_steps=4"], "train.first_unet_steps: 4, but model preset unet is one U-Net"),
        (["model.up_kernel_sizes=[4, 3]"], "expected L >= 2 encoder levels, L poolings and L - 1 decoder kernels"),
        (["model.sample_size=64"], "maps of 32x32, but the model is for 64x64 maps (model.sample_size"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, synthetic_cache, capsys, extra, message):
    assert message in run_and_read_error([*tiny_radiounet_overrides(tmp_path / "run", synthetic_cache), *extra],
                                         capsys)


def test_a_checkpoint_of_a_model_of_other_widths_is_one_error_line(tmp_path, synthetic_cache, capsys):
    cascade = tmp_path / "cascade"
    assert main_radiounet([*tiny_radiounet_overrides(cascade, synthetic_cache, TINY_CASCADE), "train.max_steps=2",
                           "train.save_every=2", "train.evaluate_at_end=false", "train.num_sample_images=0"]) == 0
    checkpoint = list_checkpoints(cascade)[-1][1]
    message = run_and_read_error(["--resume", str(checkpoint), *tiny_radiounet_overrides(tmp_path / "unet",
                                                                                         synthetic_cache)], capsys)
    assert f"--resume {checkpoint}: its model has second_down_channels [4, 4, 4, 4, 4, 4, 4], where this run's " \
           "has None" in message


def test_the_shipped_configs_are_the_quickstart_s_data_and_the_original_s_schedule():
    quickstart = read_radiounet_config(REPO / "configs/radiounet_quickstart.yaml")[0]
    assert quickstart.model.preset == "unet" and not quickstart.model.is_cascade()
    # the maps, augmentation included, that both quickstart stages train on
    assert quickstart.data == load_vae_config(REPO / "configs/quickstart.yaml").data
    assert quickstart.data == read_ldm_config(REPO / "configs/ldm_quickstart.yaml")[0].data

    paper = read_radiounet_config(REPO / "configs/radiounet.yaml")[0]
    assert (paper.model.preset, paper.data.source, paper.data.protocol) == ("paper", "radiomapseer", "radiounet")
    assert (paper.train.optimizer, paper.train.lr, paper.train.batch_size, paper.train.weight_decay) == (
        "adamw", 1e-4, 15, 0.0)
    # 50 epochs per U-Net of 501 maps x 80 transmitters in batches of 15: 2,672 steps an epoch
    assert (paper.train.first_unet_steps, paper.train.max_steps) == (50 * 2672, 2 * 50 * 2672)
