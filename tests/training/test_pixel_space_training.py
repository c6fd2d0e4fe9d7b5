"""The second stage in pixel space (``denoiser.space: pixel``): trained on the maps themselves with no VAE,
exported as a RadioDiffPipeline without one, scored without a VAE ceiling, resumed exactly."""

import json
import shutil

import torch

from tests.helpers.tiny_runs import tiny_loop_overrides
from tests.training.test_ldm_training import assert_same, ldm_config, pipeline_weights, run_and_read_error
from radiodiff import RadioDiffPipeline, RadioUNetDenoiser
from radiodiff.training import train_ldm

PIXEL_WEIGHTS = ("unet", "condition_encoder")


def tiny_pixel_overrides(output_dir, cache_dir) -> list[str]:
    """RadioUNet's U-Net (narrowed) denoising 32x32 synthetic maps for 8 steps; no vae.path."""
    return [
        f"output_dir={output_dir}",
        "denoiser.space=pixel",
        "denoiser.preset=radiounet",
        *tiny_loop_overrides(cache_dir),
        "diffusion.sampling_steps=2",
    ]


def test_a_pixel_space_run_exports_a_pipeline_without_a_vae_scored_without_a_ceiling(tmp_path, synthetic_cache):
    output_dir = train_ldm(ldm_config(*tiny_pixel_overrides(tmp_path / "run", synthetic_cache)))

    assert not (output_dir / "pipeline" / "vae").exists()
    assert json.loads((output_dir / "pipeline" / "model_index.json").read_text())["vae"] == [None, None]
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["rows"]["vae_ceiling"] is None and metrics["rows"]["model"]["metrics"]["nmse"]["mean"] > 0
    card = (output_dir / "README.md").read_text()
    assert "No VAE: the denoiser works on the maps themselves" in card and "VAE ceiling" not in card
    assert "`radiodiff.models.RadioUNetDenoiser`" in card and "pixel-diffusion" in card

    pipe = RadioDiffPipeline.from_pretrained(output_dir / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae is None and isinstance(pipe.unet, RadioUNetDenoiser)
    # the map is the denoiser's own channel: (C, eps) of RadioDiff's process for one map channel
    assert (pipe.unet.config.in_channels, pipe.unet.config.out_channels) == (1 + 8, 2)
    buildings = torch.zeros(32, 32)
    buildings[4:12, 8:20] = 1.0
    maps = pipe(buildings, (20, 24), generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert maps.shape == (1, 1, 32, 32) and torch.isfinite(maps).all()


def test_a_pixel_space_run_resumes_to_the_weights_of_a_straight_run(tmp_path, synthetic_cache):
    straight = tmp_path / "straight"
    train_ldm(ldm_config(*tiny_pixel_overrides(straight, synthetic_cache), "train.evaluate_at_end=false"))
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    train_ldm(ldm_config(*tiny_pixel_overrides(resumed, synthetic_cache), "train.evaluate_at_end=false"),
              resume="latest")
    assert_same(pipeline_weights(resumed, PIXEL_WEIGHTS), pipeline_weights(straight, PIXEL_WEIGHTS))


def test_pixel_space_with_a_vae_or_encoded_latents_is_one_error_line(tmp_path, synthetic_cache, capsys):
    overrides = tiny_pixel_overrides(tmp_path / "run", synthetic_cache)
    message = run_and_read_error(overrides + ["vae.path=outputs/quickstart/vae"], capsys)
    assert "vae.path: 'outputs/quickstart/vae'; a pixel-space denoiser (denoiser.space: pixel)" in message
    message = run_and_read_error(overrides + ["latents.source=encoded", f"latents.dir={tmp_path}"], capsys)
    assert "latents.source: 'encoded'; a pixel-space denoiser" in message
    # a latent run without a VAE points at both ways out
    assert "(or denoiser.space: pixel" in run_and_read_error(["vae.path=", "denoiser.preset=tiny"], capsys)
