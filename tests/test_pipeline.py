"""RadioDiffPipeline end to end on tiny random components, for both formulations."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, FlowMatchEulerDiscreteScheduler

from radiodiff.models import RadioDiffVAE, build_condition_encoder, build_denoiser
from radiodiff.pipelines import RadioDiffPipeline, rasterize_transmitter
from radiodiff.schedulers import RadioDiffScheduler, build_scheduler

SIZE = 32
FORMULATIONS = ("radiodiff", "flow_matching")


@pytest.fixture(scope="module")
def exported_vae(tmp_path_factory) -> AutoencoderKL:
    """A tiny 4x VAE as the first stage exports it: saved by RadioDiffVAE, loaded as a plain AutoencoderKL."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vae")
    RadioDiffVAE.from_block_channels((8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=SIZE,
                                     scaling_factor=0.5, shift_factor=0.1).save_pretrained(folder)
    return AutoencoderKL.from_pretrained(folder)


def make_pipeline(vae: AutoencoderKL, formulation: str) -> RadioDiffPipeline:
    torch.manual_seed(1)
    encoder = build_condition_encoder("tiny", downsampling_factor=4)
    unet = build_denoiser("tiny", vae.config.latent_channels, encoder.config.out_channels, formulation, SIZE // 4)
    pipe = RadioDiffPipeline(vae=vae, unet=unet, condition_encoder=encoder, scheduler=build_scheduler(formulation))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module", params=FORMULATIONS)
def pipe(request, exported_vae) -> RadioDiffPipeline:
    return make_pipeline(exported_vae, request.param)


@pytest.fixture(scope="module")
def buildings() -> torch.Tensor:
    city = torch.zeros(2, 1, SIZE, SIZE)
    city[:, :, 4:12, 4:12] = 1.0
    city[1, :, 20:28, 16:30] = 1.0
    return city


TX = [(20, 3), (2, 30)]  # (x, y), one per building map


def run(pipe, buildings, transmitter=TX, seed=0, **kwargs) -> torch.Tensor:
    kwargs.setdefault("output_type", "pt")
    kwargs.setdefault("num_inference_steps", 3)
    return pipe(buildings, transmitter, generator=torch.Generator().manual_seed(seed), **kwargs).images


def test_runs_end_to_end_and_returns_maps_on_zero_one(pipe, buildings):
    maps = run(pipe, buildings)
    assert maps.shape == (2, 1, SIZE, SIZE)
    assert maps.min() >= 0 and maps.max() <= 1
    assert maps.std() > 0


def test_output_types(pipe, buildings):
    as_tensor = run(pipe, buildings)
    as_array = run(pipe, buildings, output_type="np")
    as_images = run(pipe, buildings, output_type="pil")
    assert as_array.shape == (2, SIZE, SIZE, 1)
    np.testing.assert_allclose(as_array[..., 0], as_tensor[:, 0].numpy(), atol=1e-6)
    assert [(image.mode, image.size) for image in as_images] == [("L", (SIZE, SIZE))] * 2
    images, = pipe(buildings, TX, num_inference_steps=1, return_dict=False, output_type="np")
    assert images.shape == (2, SIZE, SIZE, 1)


def test_same_seed_same_maps_different_seed_different_maps(pipe, buildings):
    first, again, other = run(pipe, buildings, seed=0), run(pipe, buildings, seed=0), run(pipe, buildings, seed=1)
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-3


def test_radiodiff_calls_the_unet_once_more_than_its_steps_for_the_split_last_step(exported_vae, buildings):
    pipe = make_pipeline(exported_vae, "radiodiff")
    timesteps = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: timesteps.append(float(args[1])))
    run(pipe, buildings, num_inference_steps=5)
    handle.remove()
    assert timesteps == pytest.approx([1000, 800, 600, 400, 200, 0.1])


def test_the_condition_reaches_the_maps(pipe, buildings):
    moved = [(x + 1, y) for x, y in TX]
    assert (run(pipe, buildings) - run(pipe, buildings, transmitter=moved)).abs().max() > 1e-4


def test_inputs_as_arrays_images_lists_and_coordinates_give_the_same_maps(pipe, buildings):
    reference = run(pipe, buildings)
    transmitter_maps = torch.stack([rasterize_transmitter(x, y, SIZE, SIZE) for x, y in TX])
    eight_bit = (buildings[:, 0].numpy() * 255).astype(np.uint8)
    images = [PIL.Image.fromarray(city, mode="L") for city in eight_bit]
    assert torch.equal(run(pipe, buildings, transmitter_maps), reference)
    assert torch.equal(run(pipe, eight_bit[:, None], transmitter_maps.numpy()), reference)
    assert torch.equal(run(pipe, images, [m[0] for m in transmitter_maps]), reference)
    assert torch.equal(run(pipe, buildings[0, 0], TX[0]), run(pipe, buildings[:1], transmitter_maps[:1]))


def test_save_pretrained_writes_a_standard_safetensors_folder_that_both_loaders_open(pipe, buildings, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "RadioDiffPipeline"
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["unet"] == ["diffusers", "UNet2DModel"]
    assert index["condition_encoder"] == ["radiodiff.models.condition_encoder", "RadioMapConditionEncoder"]
    weights = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.suffix not in (".json",))
    assert [w for w in weights if "." in w] == [
        f"{component}/diffusion_pytorch_model.safetensors" for component in ("condition_encoder", "unet", "vae")
    ]
    assert_round_trip(pipe, tmp_path, buildings)


def assert_round_trip(pipe, folder, buildings):
    """Both loaders restore every weight bit for bit and give the same maps.

    Loaded weights sit at other memory alignments than freshly built ones, and CPU kernels may then round
    differently (measured: ~1e-7), so maps are compared exactly between the two loaders (same file, same
    layout) and to the in-memory pipeline within float32 rounding.
    """
    reference = run(pipe, buildings)
    outputs = []
    for loader in (RadioDiffPipeline, DiffusionPipeline):
        loaded = loader.from_pretrained(folder)
        loaded.set_progress_bar_config(disable=True)
        assert type(loaded) is RadioDiffPipeline
        assert loaded.formulation == pipe.formulation
        for name in ("vae", "unet", "condition_encoder"):
            original, restored = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
            assert all(torch.equal(original[key], restored[key]) for key in original), name
        outputs.append(run(loaded, buildings))
    assert torch.equal(outputs[0], outputs[1])
    torch.testing.assert_close(outputs[0], reference, rtol=0, atol=1e-5)


def test_a_pipeline_built_with_radiodiff_vae_also_round_trips(exported_vae, buildings, tmp_path):
    vae = RadioDiffVAE.from_config(exported_vae.config)
    vae.load_state_dict(exported_vae.state_dict())
    pipe = make_pipeline(vae, "flow_matching")
    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["vae"] == ["radiodiff.models.vae", "RadioDiffVAE"]
    assert_round_trip(pipe, tmp_path, buildings)


def one_line_error(pipe, buildings, transmitter, match, **kwargs):
    with pytest.raises(ValueError, match=match) as error:
        run(pipe, buildings, transmitter, **kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "make_inputs, match",
    [
        (lambda b: (b[..., :28, :28], TX), "maps of 28x28; expected 32x32, the VAE's sample_size"),
        (lambda b: (b.repeat(1, 3, 1, 1), TX), r"buildings: shape \(2, 3, 32, 32\); expected one channel"),
        (lambda b: (PIL.Image.new("RGB", (SIZE, SIZE)), TX[0]), "a PIL image of mode RGB"),
        (lambda b: (b * 2, TX), r"buildings: values in \[0, 2\]; expected \[0, 1\]"),
        (lambda b: (b, TX[:1]), "batch mismatch: 2 building maps and 1 transmitter maps"),
        (lambda b: (b, torch.zeros(2, 1, SIZE, SIZE)), "transmitter: map 0 has 0 lit pixels; expected exactly one"),
        (lambda b: (b, torch.ones(2, 1, SIZE, SIZE)), "map 0 has 1024 lit pixels; expected exactly one"),
        (lambda b: (b, torch.zeros(2, 1, 16, 16)), "transmitter: maps of 16x16; expected 32x32"),
        (lambda b: (b, [(40, 1), (1, 1)]), r"transmitter \(x=40, y=1\): outside the 32x32 map"),
        (lambda b: (b, "tx"), "transmitter: got str; expected a tensor"),
        (lambda b: ([], TX), "buildings: an empty list"),
    ],
)
def test_bad_inputs_are_refused_with_one_line(exported_vae, buildings, make_inputs, match):
    one_line_error(make_pipeline(exported_vae, "flow_matching"), *make_inputs(buildings), match)


def test_bad_call_settings_are_refused(exported_vae, buildings):
    pipe = make_pipeline(exported_vae, "radiodiff")
    one_line_error(pipe, buildings, TX, "output_type: 'latent'", output_type="latent")
    one_line_error(pipe, buildings, TX, "num_inference_steps: 0", num_inference_steps=0)
    one_line_error(pipe, buildings, TX, r"eta: 2; expected a value in \[0, 1\]", eta=2)
    one_line_error(make_pipeline(exported_vae, "flow_matching"), buildings, TX, "only RadioDiff's sampler takes eta",
                   eta=0.0)


def test_eta_zero_draws_only_the_starting_noise_and_eta_none_is_the_scheduler_s(exported_vae, buildings):
    pipe = make_pipeline(exported_vae, "radiodiff")
    latent_size = exported_vae.config.sample_size // pipe.vae_scale_factor
    starting_noise = (buildings.shape[0], exported_vae.config.latent_channels, latent_size, latent_size)

    def draws_after(eta):
        generator = torch.Generator().manual_seed(0)
        maps = pipe(buildings, TX, num_inference_steps=3, generator=generator, eta=eta, output_type="pt").images
        return maps, generator.get_state()

    reference = torch.Generator().manual_seed(0)
    torch.randn(starting_noise, generator=reference)
    deterministic, state = draws_after(0.0)
    assert torch.equal(state, reference.get_state())  # no step drew noise
    stochastic, state = draws_after(1.0)
    assert not torch.equal(state, reference.get_state()) and (deterministic - stochastic).abs().max() > 1e-3
    assert torch.equal(draws_after(None)[0], stochastic)  # the scheduler's config: eta 1, the original sampler
    pipe.scheduler = RadioDiffScheduler.from_config(pipe.scheduler.config, eta=0.0)
    assert torch.equal(draws_after(None)[0], deterministic)


def test_components_that_do_not_fit_together_are_refused(exported_vae):
    encoder = build_condition_encoder("tiny", downsampling_factor=4)
    velocity_unet = build_denoiser("tiny", 3, encoder.config.out_channels, "flow_matching", SIZE // 4)
    with pytest.raises(ValueError, match="the radiodiff formulation expects 6"):
        RadioDiffPipeline(exported_vae, velocity_unet, encoder, RadioDiffScheduler())
    narrow_unet = build_denoiser("tiny", 3, 4, "flow_matching", SIZE // 4)
    with pytest.raises(ValueError, match="unet: in_channels 7; expected 3 latent"):
        RadioDiffPipeline(exported_vae, narrow_unet, encoder, FlowMatchEulerDiscreteScheduler())
    coarse_encoder = build_condition_encoder("tiny", downsampling_factor=8)
    with pytest.raises(ValueError, match="downsampling_factor 8; expected the VAE's 4"):
        RadioDiffPipeline(exported_vae, velocity_unet, coarse_encoder, FlowMatchEulerDiscreteScheduler())


def test_rasterize_transmitter_lights_column_x_row_y():
    transmitter = rasterize_transmitter(5, 2, 4, 8)
    assert transmitter.shape == (1, 4, 8)
    assert transmitter.sum() == 1 and transmitter[0, 2, 5] == 1


def test_the_second_stage_is_exported_from_the_package_top_level():
    import radiodiff
    from radiodiff.models import RadioMapConditionEncoder

    assert radiodiff.RadioDiffPipeline is RadioDiffPipeline
    assert radiodiff.RadioDiffScheduler is RadioDiffScheduler
    assert radiodiff.RadioMapConditionEncoder is RadioMapConditionEncoder
