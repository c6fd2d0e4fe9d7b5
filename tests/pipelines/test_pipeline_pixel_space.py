"""RadioDiffPipeline without a VAE: the denoiser on the maps themselves (``denoiser.space: pixel``)."""

import json

import pytest
import torch

from tests.helpers.diffusers_alone import run_with_diffusers_alone
from tests.helpers.map_fixtures import tiny_pixel_pipeline, tiny_pipeline
from radiodiff.models import RadioUNetDenoiser
from radiodiff.pipelines import RadioDiffPipeline, rasterize_transmitter

SIZE = 32
TX = [(20, 3), (2, 30)]


def transmitters() -> torch.Tensor:
    return torch.stack([rasterize_transmitter(x, y, SIZE, SIZE) for x, y in TX])


@pytest.mark.parametrize("formulation", ["radiodiff", "flow_matching", "regression"])
def test_generates_maps_of_the_unet_s_size_on_zero_one(buildings, formulation):
    pipe = tiny_pixel_pipeline(formulation)
    maps = pipe(buildings, TX, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert maps.shape == (2, 1, SIZE, SIZE) and maps.min() >= 0 and maps.max() <= 1
    assert pipe.sample_size == SIZE and pipe.latent_channels == 1 and pipe.vae_scale_factor == 1


def test_the_regression_map_is_the_denoiser_s_one_prediction_mapped_to_zero_one(buildings):
    pipe = tiny_pixel_pipeline("regression")
    maps = pipe(buildings, TX, generator=torch.Generator().manual_seed(0), output_type="pt").images
    latent = pipe(buildings, TX, generator=torch.Generator().manual_seed(0), output_type="latent").images
    with torch.no_grad():
        condition = pipe.condition_encoder(buildings, transmitters())
        prediction = pipe.unet(torch.cat([torch.zeros(2, 1, SIZE, SIZE), condition], dim=1), 0).sample
    torch.testing.assert_close(latent, prediction)
    # no decoder: [-1, 1] to [0, 1], clipped
    torch.testing.assert_close(maps, (prediction / 2 + 0.5).clamp(0, 1))


def test_the_noise_level_reaches_the_denoiser():
    torch.manual_seed(0)
    unet = RadioUNetDenoiser(sample_size=SIZE, in_channels=3, down_channels=(4, 8, 8, 8, 8, 8, 8),
                             up_channels=(8, 8, 8, 8, 8, 4), head_channels=4)
    sample = torch.randn(2, 3, SIZE, SIZE)
    early, late = unet(sample, 10).sample, unet(sample, 990).sample
    assert early.shape == (2, 1, SIZE, SIZE) and not torch.allclose(early, late)
    # one timestep per map gives each map its own level
    mixed = unet(sample, torch.tensor([10.0, 990.0])).sample
    torch.testing.assert_close(mixed[0], early[0])
    torch.testing.assert_close(mixed[1], late[1])
    # a linear head: noise and velocities take both signs
    assert (early < 0).any() and (early > 0).any()
    with pytest.raises(ValueError, match=r"sample: shape \(2, 4, 32, 32\); expected \(B, 3, H, W\)"):
        unet(torch.randn(2, 4, SIZE, SIZE), 10)


def test_saves_without_a_vae_and_loads_with_radiodiff_and_with_diffusers_alone(buildings, tmp_path):
    pipe = tiny_pixel_pipeline("radiodiff")
    pipe.register_to_config(default_num_inference_steps=2)
    pipe.save_pretrained(tmp_path / "pipeline")
    index = json.loads((tmp_path / "pipeline" / "model_index.json").read_text())
    assert index["vae"] == [None, None] and not (tmp_path / "pipeline" / "vae").exists()
    assert index["unet"] == ["radiounet", "RadioUNetDenoiser"]
    expected = pipe(buildings, TX, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                    output_type="pt").images

    loaded = RadioDiffPipeline.from_pretrained(tmp_path / "pipeline")
    assert loaded.vae is None and isinstance(loaded.unet, RadioUNetDenoiser)
    loaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(
        loaded(buildings, TX, generator=torch.Generator().manual_seed(0), output_type="pt").images, expected,
        rtol=0, atol=0,
    )
    result = run_with_diffusers_alone(tmp_path / "pipeline", buildings, TX, tmp_path)
    assert result["class"].startswith("diffusers_modules.")
    torch.testing.assert_close(result["maps"], expected, rtol=0, atol=1e-5)


def test_maps_of_another_size_are_one_error_line(buildings):
    pipe = tiny_pixel_pipeline("radiodiff", size=64)
    with pytest.raises(ValueError, match="buildings: maps of 32x32; expected 64x64, the pipeline.s map size"):
        pipe(buildings, TX, num_inference_steps=1)


def test_a_unet_for_another_map_size_than_the_vae_s_is_refused():
    pipe = tiny_pipeline("radiodiff")
    with pytest.raises(ValueError, match=r"unet: sample_size 16 makes 64x64 maps; expected the VAE's 32"):
        RadioDiffPipeline(vae=pipe.vae, unet=tiny_pipeline("radiodiff", size=64).unet,
                          condition_encoder=pipe.condition_encoder, scheduler=pipe.scheduler)
