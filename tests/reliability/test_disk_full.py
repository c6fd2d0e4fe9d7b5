"""A full disk (OSError ENOSPC) while checkpointing, writing samples or exporting: a clear error, checkpoints intact."""

import errno

import pytest
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file

import radiodiff.training.vae_trainer as vae_trainer_module
from tests.helpers.errors import the_error_line
from tests.helpers.tiny_runs import tiny_training_overrides
from radiodiff.models import RadioDiffVAE
from radiodiff.training import main_vae
from radiodiff.training.checkpoints import list_checkpoints


def disk_full_on_call(number: int, original):
    """``original``, except that its ``number``-th call fails like a full disk."""
    calls = []

    def write(*args, **kwargs):
        calls.append(args)
        if len(calls) == number:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(*args, **kwargs)

    return write


def assert_only_the_first_checkpoint_is_left(output_dir):
    assert [step for step, _ in list_checkpoints(output_dir)] == [4]
    assert load_file(output_dir / "checkpoints" / "checkpoint-4" / "model.safetensors")
    assert not list((output_dir / "checkpoints").glob(".*"))


@pytest.mark.parametrize(
    "owner, name",
    [(EMAModel, "save_pretrained"), (vae_trainer_module, "save_sample_sheet")],
    ids=["ema-weights-of-a-checkpoint", "sample-sheet"],
)
def test_a_full_disk_at_step_8_stops_with_one_error_line_and_keeps_checkpoint_4(
    owner, name, tmp_path, synthetic_cache, monkeypatch, capsys
):
    monkeypatch.setattr(owner, name, disk_full_on_call(2, getattr(owner, name)))
    output_dir = tmp_path / "full"
    assert main_vae(tiny_training_overrides(output_dir, synthetic_cache)) == 2

    message = the_error_line(capsys.readouterr().err)
    assert "No space left on device" in message and "checkpoint-4, is intact" in message
    assert_only_the_first_checkpoint_is_left(output_dir)


def test_a_full_disk_during_export_keeps_the_checkpoints_and_resuming_exports(
    tmp_path, synthetic_cache, monkeypatch, capsys
):
    # calls 1 and 2 write the EMA weights of checkpoints 4 and 8 (EMAModel saves through the VAE class), call 3
    # the exported vae/ weights: call 4, its EMA variant, finds the disk full
    monkeypatch.setattr(RadioDiffVAE, "save_pretrained", disk_full_on_call(4, RadioDiffVAE.save_pretrained))
    output_dir = tmp_path / "full"
    overrides = tiny_training_overrides(output_dir, synthetic_cache)
    assert main_vae(overrides) == 2

    message = the_error_line(capsys.readouterr().err)
    assert f"could not export the trained model to {output_dir}" in message
    assert "No space left on device" in message and "checkpoint-8, is intact" in message
    # the half-written vae/ (plain weights, no EMA variant) never replaced anything
    assert not (output_dir / "vae").exists() and not (output_dir / ".tmp-vae").exists()
    assert [step for step, _ in list_checkpoints(output_dir)] == [4, 8]

    monkeypatch.undo()
    assert main_vae(["--resume", "latest", *overrides]) == 0
    assert (output_dir / "vae" / "diffusion_pytorch_model.ema.safetensors").is_file()
    assert (output_dir / "discriminator" / "diffusion_pytorch_model.safetensors").is_file()
