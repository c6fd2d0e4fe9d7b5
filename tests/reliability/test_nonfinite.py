"""Non-finite values: skipped steps are counted and survive a resume; NaN weights are never saved or exported."""

import json
import math

import torch
from safetensors.torch import load_file

from tests.helpers.errors import the_error_line
from tests.helpers.tiny_runs import read_exported_weights, tiny_training_overrides
from radiodiff.losses import VAEGANLoss
from radiodiff.training import main_vae
from radiodiff.training.checkpoints import STATE_FILE, list_checkpoints
from radiodiff.training.vae_trainer import VAETrainer as Trainer


def test_nan_weights_are_never_checkpointed_or_exported_and_the_run_resumes_from_the_last_good_one(
    tmp_path, synthetic_cache, monkeypatch, capsys
):
    generator_loss, optimizer_steps = VAEGANLoss.generator_loss, Trainer.optimizer_steps

    def nan_loss_at_step_2(self, gain_map, reconstruction, posterior, step, *args, **kwargs):
        loss, logs = generator_loss(self, gain_map, reconstruction, posterior, step, *args, **kwargs)
        return (loss * math.nan, logs) if step == 1 else (loss, logs)

    def nan_weights_after_step_5(self, updates):
        optimizer_steps(self, updates)
        if self.state.step == 4:
            with torch.no_grad():
                next(self.raw_vae.parameters()).fill_(math.nan)

    monkeypatch.setattr(VAEGANLoss, "generator_loss", nan_loss_at_step_2)
    monkeypatch.setattr(Trainer, "optimizer_steps", nan_weights_after_step_5)
    output_dir = tmp_path / "nan"
    overrides = tiny_training_overrides(output_dir, synthetic_cache) + ["train.max_nonfinite_steps=10"]
    assert main_vae(overrides) == 2

    assert the_error_line(capsys.readouterr().err) == (
        "error: step 8: the weights are not finite; refusing to checkpoint them"
    )
    ((step, checkpoint),) = list_checkpoints(output_dir)
    assert step == 4 and json.loads((checkpoint / STATE_FILE).read_text())["skipped_steps"] == 1
    for weights in checkpoint.glob("**/*.safetensors"):
        assert all(torch.isfinite(tensor).all() for tensor in load_file(weights).values()), weights
    assert not (output_dir / "vae").exists()
    log = next((output_dir / "logs").glob("*.log")).read_text()
    skipped = [line for line in log.splitlines() if "skipped step: non-finite loss" in line]
    assert [line.split("[Train Step] ")[1].split("/")[0] for line in skipped] == ["2", "6", "7", "8"]

    monkeypatch.undo()
    assert main_vae(["--resume", "latest", *overrides]) == 0
    assert all(torch.isfinite(tensor).all() for tensor in read_exported_weights(output_dir).values())
    # the step skipped before checkpoint 4 is still counted; the ones after it were redone
    assert json.loads((output_dir / "training_summary.json").read_text())["skipped_steps"] == 1
