"""Bad inputs end as one clear ``error:`` line naming the file, key or value, and exit code 2: no traceback."""

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from tests.helpers.errors import the_error_line
from tests.helpers.tiny_runs import REPO, subprocess_env, tiny_training_overrides
from radiodiff.cli import main as radiodiff_main
from radiodiff.training import main_vae

WEIGHTS = "diffusion_pytorch_model.safetensors"


class WritesAFileWhenUnpickled:
    """A pickle that runs code: if a loader ever unpickles it, ``path`` appears."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synthetic_cache):
    """A finished 2-step run: checkpoints/checkpoint-2/ and vae/ to spoil."""
    output_dir = tmp_path_factory.mktemp("finished") / "run"
    overrides = tiny_training_overrides(output_dir, synthetic_cache) + ["train.max_steps=2", "train.save_every=2"]
    assert main_vae(overrides) == 0
    return output_dir


@pytest.fixture
def radiomapseer_copy(tmp_path, synthetic_cache, finished_run):
    """The synthetic maps (RadioMapSeer layout) copied, with overrides that train on the copy."""
    (generated,) = [folder for folder in synthetic_cache.iterdir() if (folder / "gain").is_dir()]
    root = shutil.copytree(generated, tmp_path / "radiomapseer")
    return root, ["data.source=radiomapseer", f"data.root={root}", "data.resolution=32"]


def run_and_read_the_error(argv, capsys) -> str:
    assert main_vae(argv) == 2
    return the_error_line(capsys.readouterr().err)


def overrides(tmp_path, synthetic_cache, *extra):
    return [*tiny_training_overrides(tmp_path / "run", synthetic_cache), "train.max_steps=2", *extra]


def test_corrupt_pngs_are_named(tmp_path, synthetic_cache, radiomapseer_copy, capsys):
    root, data = radiomapseer_copy
    for png in (root / "gain" / "DPM").glob("*.png"):
        png.write_bytes(png.read_bytes()[:60])
    message = run_and_read_the_error(overrides(tmp_path, synthetic_cache, *data), capsys)
    assert str(root / "gain" / "DPM") in message and ".png: unreadable image" in message


def test_skipped_corrupt_pngs_are_one_warning_line_without_python_source(tmp_path, synthetic_cache, radiomapseer_copy):
    # a real process: under pytest, warnings are recorded rather than printed
    root, data = radiomapseer_copy
    for png in sorted((root / "gain" / "DPM").glob("*.png"))[:2]:
        png.write_bytes(png.read_bytes()[:60])
    command = [sys.executable, str(REPO / "train_vae.py"), *overrides(tmp_path, synthetic_cache, *data, "data.on_corrupt=skip")]
    result = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (warning,) = [line for line in result.stderr.splitlines() if "unreadable image(s)" in line]
    assert warning.startswith("warning: ") and "skipped 2 unreadable image(s)" in warning
    assert "UserWarning" not in result.stderr and "warnings.warn" not in result.stderr


def test_maps_with_the_wrong_pixel_format_are_named(tmp_path, synthetic_cache, radiomapseer_copy, capsys):
    root, data = radiomapseer_copy
    for png in (root / "gain" / "DPM").glob("*.png"):
        Image.fromarray(np.full((32, 32), 40000, dtype=np.uint16)).save(png)
    message = run_and_read_the_error(overrides(tmp_path, synthetic_cache, *data), capsys)
    assert ".png: expected an 8-bit grayscale image, got mode I;16" in message


@pytest.mark.parametrize("key", ["model.in_channels", "model.out_channels", "discriminator.in_channels"])
def test_a_model_for_another_channel_count_than_the_maps_is_refused(key, tmp_path, synthetic_cache, capsys):
    message = run_and_read_the_error(overrides(tmp_path, synthetic_cache, f"{key}=3"), capsys)
    assert message == f"error: {key}: 3, but the training maps have 1 channel(s); expected 1"


def test_an_empty_dataset_folder_is_named(tmp_path, synthetic_cache, radiomapseer_copy, capsys):
    root, data = radiomapseer_copy
    for png in (root / "gain" / "DPM").glob("*.png"):
        png.unlink()
    message = run_and_read_the_error(overrides(tmp_path, synthetic_cache, *data), capsys)
    assert message == f"error: {root / 'gain' / 'DPM'}: no gain maps in it; expected {{map}}_{{tx}}.png files"


def test_a_dataset_smaller_than_one_batch_is_refused(tmp_path, synthetic_cache, capsys):
    message = run_and_read_the_error(overrides(tmp_path, synthetic_cache, "train.batch_size=64"), capsys)
    assert "fewer than one batch of 64" in message


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--config", "{tmp}/missing.yaml"], "{tmp}/missing.yaml: config file not found"),
        (["--resume", "{tmp}/missing"], "--resume {tmp}/missing: not a complete checkpoint folder"),
        (["data.source=radiomapseer", "data.root={tmp}/missing"], "{tmp}/missing: RadioMapSeer root not found"),
        (["model.pretrained={tmp}/missing"], "model.pretrained {tmp}/missing: not a readable vae/ folder"),
    ],
    ids=["config", "checkpoint", "dataset", "pretrained-vae"],
)
def test_missing_files_and_folders_are_named(argv, expected, tmp_path, synthetic_cache, capsys):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    options, extra = [a for a in argv if a.startswith("--") or "/" in a and "=" not in a], [a for a in argv if "=" in a]
    message = run_and_read_the_error([*options, *overrides(tmp_path, synthetic_cache, *extra)], capsys)
    assert expected.replace("{tmp}", str(tmp_path)) in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train: [unclosed\n", "not valid YAML"),
        ("train:\n  max_step: 3\n", "unknown key train.max_step; did you mean train.max_steps? valid keys here: train.max_steps"),
        ("train:\n  max_steps: many\n", "train.max_steps: expected int, got 'many'"),
        ("train:\n  lr: .nan\n", "train.lr: expected a finite number, got nan"),
    ],
    ids=["malformed-yaml", "unknown-key", "wrong-type", "not-finite"],
)
def test_config_mistakes_are_named(text, expected, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    message = run_and_read_the_error(["--config", str(config)], capsys)
    assert message.startswith(f"error: {config}: ") and expected in message


def test_resuming_a_checkpoint_of_another_architecture_names_the_folder(
    tmp_path, synthetic_cache, finished_run, capsys
):
    checkpoint = finished_run / "checkpoints" / "checkpoint-2"
    argv = ["--resume", str(checkpoint), *overrides(tmp_path, synthetic_cache, "model.block_out_channels=[8, 8]")]
    message = run_and_read_the_error(argv, capsys)
    assert message.startswith(f"error: {checkpoint}: could not restore the training state (Error(s) in loading")
    assert "size mismatch for" in message and "Was it written by a run with another model" in message
    assert len(message) < 1000  # not the full list of mismatching tensors


def spoil(path: Path, how: str) -> None:
    if how == "pickle":
        path.write_bytes(pickle.dumps(WritesAFileWhenUnpickled(path.with_name("unpickled"))))
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("how", ["pickle", "truncated"])
@pytest.mark.parametrize(
    "weights, expected",
    [
        ("model.safetensors", "{checkpoint}: a file of the checkpoint is truncated or not in the expected format"),
        (f"ema/{WEIGHTS}", "{checkpoint}/ema: the EMA weights cannot be read"),
    ],
    ids=["model", "ema"],
)
def test_a_spoiled_checkpoint_file_is_refused_and_never_unpickled(
    weights, expected, how, tmp_path, synthetic_cache, finished_run, capsys
):
    checkpoint = shutil.copytree(finished_run / "checkpoints" / "checkpoint-2", tmp_path / "checkpoint-2")
    spoil(checkpoint / weights, how)
    message = run_and_read_the_error(["--resume", str(checkpoint), *overrides(tmp_path, synthetic_cache)], capsys)
    assert expected.format(checkpoint=checkpoint) in message
    assert not (checkpoint / weights).with_name("unpickled").exists()


@pytest.mark.parametrize("how", ["pickle", "truncated"])
def test_spoiled_pretrained_vae_weights_are_refused_and_never_unpickled(
    how, tmp_path, synthetic_cache, finished_run, capsys
):
    vae = shutil.copytree(finished_run / "vae", tmp_path / "vae")
    spoil(vae / WEIGHTS, how)
    with pytest.raises(OSError, match=f"Unable to load weights from checkpoint file.*{WEIGHTS}"):
        AutoencoderKL.from_pretrained(vae)
    message = run_and_read_the_error(overrides(tmp_path, synthetic_cache, f"model.pretrained={vae}"), capsys)
    assert f"model.pretrained {vae}: not a readable vae/ folder" in message
    assert not (vae / "unpickled").exists()


@pytest.mark.parametrize("how", ["safetensors", "truncated"])
def test_convert_refuses_a_file_that_is_not_a_whole_torch_checkpoint(how, tmp_path, finished_run, capsys):
    original = tmp_path / "model-1.pt"
    if how == "safetensors":
        shutil.copy(finished_run / "vae" / WEIGHTS, original)
    else:
        torch.save({"model": {"encoder.conv_in.weight": torch.zeros(8, 1, 3, 3)}}, original)
        spoil(original, how)
    assert radiodiff_main(["convert", str(original), "--out", str(tmp_path / "converted")]) == 2
    message = capsys.readouterr().err
    assert "Traceback" not in message
    assert message.startswith(f"radiodiff convert: error: {original}: not a")
    assert not (tmp_path / "converted").exists()
