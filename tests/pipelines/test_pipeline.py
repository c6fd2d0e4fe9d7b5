"""RadioDiffPipeline end to end on tiny random components, for both formulations."""

import inspect
import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, FlowMatchEulerDiscreteScheduler

from tests.helpers.diffusers_alone import run_with_diffusers_alone
from tests.helpers.map_fixtures import tiny_pipeline
from radiodiff.models import RadioDiffVAE, RadioMapConditionEncoder, build_condition_encoder, build_denoiser
from radiodiff.pipelines import RadioDiffPipeline, rasterize_transmitter
from radiodiff.pipelines import pipeline_radiodiff as pipeline_module
from radiodiff.schedulers import RadioDiffScheduler, RegressionScheduler, formulation_of

SIZE = 32  # as tests/pipelines/conftest.py's buildings
TX = [(20, 3), (2, 30)]  # (x, y), one per building map, in free space

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
    return tiny_pipeline(formulation, SIZE, vae=vae)


@pytest.fixture(scope="module", params=FORMULATIONS)
def pipe(request, exported_vae) -> RadioDiffPipeline:
    return make_pipeline(exported_vae, request.param)


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


def test_save_pretrained_writes_a_safetensors_folder_that_carries_its_code(pipe, buildings, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_radiodiff", "RadioDiffPipeline"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["unet"] == ["diffusers", "UNet2DModel"]
    assert index["condition_encoder"] == ["condition_encoder", "RadioMapConditionEncoder"]
    expected_scheduler = {"RadioDiffScheduler": ["scheduling_radiodiff", "RadioDiffScheduler"],
                          "FlowMatchEulerDiscreteScheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}
    assert index["scheduler"] == expected_scheduler[type(pipe.scheduler).__name__]
    assert index["default_num_inference_steps"] == 5
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.suffix != ".json")
    assert [f for f in files if "." in f] == sorted(shipped_code(pipe) + [
        f"{component}/diffusion_pytorch_model.safetensors" for component in ("condition_encoder", "unet", "vae")
    ])
    # the shipped files are the package's modules, verbatim
    assert (tmp_path / "pipeline_radiodiff.py").read_text() == Path(pipeline_module.__file__).read_text()
    assert_round_trip(pipe, tmp_path, buildings)


def shipped_code(pipe) -> list[str]:
    """The code files a saved folder carries: the pipeline's, the condition encoder's, and radiodiff's scheduler's."""
    scheduler_file = Path(inspect.getsourcefile(type(pipe.scheduler)))
    scheduler = [f"scheduler/{scheduler_file.name}"] if "radiodiff" in scheduler_file.parts else []
    return sorted(["condition_encoder/condition_encoder.py", "pipeline_radiodiff.py",
                   "radio_map_pipeline_utils.py", *scheduler])


def assert_round_trip(pipe, folder, buildings, loaders=("radiodiff", "diffusers")):
    """The loaders restore every weight bit for bit and give the same maps: RadioDiffPipeline with radiodiff's
    classes, and diffusers' generic loader with the folder's code when the folder carries it.

    Loaded weights sit at other memory alignments than freshly built ones, and CPU kernels may then round
    differently (measured: ~1e-7), so maps are compared exactly between the loaders (same file, same
    layout) and to the in-memory pipeline within float32 rounding.
    """
    reference = run(pipe, buildings)
    outputs = []
    for loader in loaders:
        if loader == "radiodiff":
            loaded = RadioDiffPipeline.from_pretrained(folder)
            assert type(loaded) is RadioDiffPipeline
            assert type(loaded.condition_encoder) is RadioMapConditionEncoder
        else:
            loaded = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
            assert type(loaded).__name__ == "RadioDiffPipeline" and type(loaded) is not RadioDiffPipeline
        loaded.set_progress_bar_config(disable=True)
        assert formulation_of(loaded.scheduler).name == formulation_of(pipe.scheduler).name
        for name in ("vae", "unet", "condition_encoder"):
            original, restored = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
            assert all(torch.equal(original[key], restored[key]) for key in original), name
        outputs.append(run(loaded, buildings))
    assert all(torch.equal(outputs[0], output) for output in outputs)
    torch.testing.assert_close(outputs[0], reference, rtol=0, atol=1e-5)


def test_a_pipeline_built_with_radiodiff_vae_also_round_trips(exported_vae, buildings, tmp_path):
    vae = RadioDiffVAE.from_config(exported_vae.config)
    vae.load_state_dict(exported_vae.state_dict())
    pipe = make_pipeline(vae, "flow_matching")
    pipe.save_pretrained(tmp_path)
    # the training VAE's module runs on its own (its defaults are its own, not the training config's): it ships too
    assert json.loads((tmp_path / "model_index.json").read_text())["vae"] == ["vae", "RadioDiffVAE"]
    assert (tmp_path / "vae" / "vae.py").read_text() == Path(inspect.getsourcefile(RadioDiffVAE)).read_text()
    assert_round_trip(pipe, tmp_path, buildings)


def save_as_before_the_code_shipped(pipe, folder):
    """A folder as radiodiff wrote it before: module paths in model_index.json, no code, no default steps."""
    pipe.save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="RadioDiffPipeline",
                 condition_encoder=["radiodiff.models.condition_encoder", "RadioMapConditionEncoder"])
    if isinstance(pipe.scheduler, RadioDiffScheduler):
        index["scheduler"] = ["radiodiff.schedulers.scheduling_radiodiff", "RadioDiffScheduler"]
    del index["default_num_inference_steps"]
    (folder / "model_index.json").write_text(json.dumps(index))
    for code in folder.rglob("*.py"):
        code.unlink()


def test_a_folder_saved_before_the_code_shipped_loads_with_radiodiff_and_re_saving_adds_the_code(
    pipe, buildings, tmp_path
):
    save_as_before_the_code_shipped(pipe, tmp_path / "old")
    assert_round_trip(pipe, tmp_path / "old", buildings, loaders=("radiodiff",))
    old = RadioDiffPipeline.from_pretrained(tmp_path / "old")
    assert old.config.default_num_inference_steps == 5
    old.save_pretrained(tmp_path / "upgraded")
    assert sorted(p.relative_to(tmp_path / "upgraded").as_posix()
                  for p in (tmp_path / "upgraded").rglob("*.py")) == shipped_code(pipe)
    assert_round_trip(pipe, tmp_path / "upgraded", buildings)


def test_diffusers_alone_loads_the_folder_with_its_code_and_gives_the_same_maps(exported_vae, buildings, tmp_path):
    pipe = make_pipeline(exported_vae, "radiodiff")
    pipe.register_to_config(default_num_inference_steps=2)
    pipe.save_pretrained(tmp_path / "pipeline")
    result = run_with_diffusers_alone(tmp_path / "pipeline", buildings, TX, tmp_path)
    assert result["class"].startswith("diffusers_modules.")
    expected = pipe(buildings, TX, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                    output_type="pt").images
    torch.testing.assert_close(result["maps"], expected, rtol=0, atol=1e-5)


def test_a_regression_pipeline_ships_its_scheduler_and_decodes_the_one_prediction(exported_vae, buildings, tmp_path):
    pipe = make_pipeline(exported_vae, "regression")
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(args))
    latents = run(pipe, buildings, num_inference_steps=5, output_type="latent")
    hook.remove()
    # one call on a zero latent at timestep 0, whatever the step count; its output is the result
    ((model_input, timestep),) = calls
    assert not model_input[:, :3].any() and float(timestep) == 0.0
    condition = pipe.condition_encoder(buildings, torch.stack([rasterize_transmitter(x, y, SIZE, SIZE) for x, y in TX]))
    prediction = pipe.unet(torch.cat([torch.zeros_like(latents), condition], dim=1), 0).sample
    assert torch.equal(latents, prediction)
    assert torch.equal(run(pipe, buildings, seed=0), run(pipe, buildings, seed=1))  # nothing is drawn
    with pytest.raises(ValueError, match=r"eta: 0.5; this pipeline's scheduler \(RegressionScheduler\) draws no noise"):
        run(pipe, buildings, eta=0.5)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["scheduler"] == ["scheduling_regression", "RegressionScheduler"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py")) == shipped_code(pipe) == [
        "condition_encoder/condition_encoder.py", "pipeline_radiodiff.py", "radio_map_pipeline_utils.py",
        "scheduler/scheduling_regression.py"]
    assert_round_trip(pipe, tmp_path, buildings)
    assert type(RadioDiffPipeline.from_pretrained(tmp_path).scheduler) is RegressionScheduler


def test_without_trust_remote_code_diffusers_refuses_to_run_the_folder_s_code(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(tmp_path)


def test_the_default_steps_are_the_saved_ones_and_an_explicit_value_wins(exported_vae, buildings, tmp_path):
    pipe = make_pipeline(exported_vae, "radiodiff")
    pipe.register_to_config(default_num_inference_steps=2)
    pipe.save_pretrained(tmp_path)
    loaded = RadioDiffPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.default_num_inference_steps == 2
    default = run(loaded, buildings, num_inference_steps=None)
    assert torch.equal(default, run(loaded, buildings, num_inference_steps=2))
    assert (default - run(loaded, buildings, num_inference_steps=3)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="default_num_inference_steps: 0; expected an integer >= 1"):
        RadioDiffPipeline(**pipe.components, default_num_inference_steps=0)


def one_line_error(pipe, buildings, transmitter, match, **kwargs):
    with pytest.raises(ValueError, match=match) as error:
        run(pipe, buildings, transmitter, **kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "make_inputs, match",
    [
        (lambda b: (b[..., :28, :28], TX), "maps of 28x28; expected 32x32, the pipeline's map size"),
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
    one_line_error(pipe, buildings, TX, "output_type: 'latents'; expected 'pil', 'np', 'pt' or 'latent'",
                   output_type="latents")
    one_line_error(pipe, buildings, TX, "num_images_per_prompt: 0; expected an integer >= 1", num_images_per_prompt=0)
    one_line_error(pipe, buildings, TX, r"latents: shape \(2, 3, 4, 4\); expected \(2, 3, 8, 8\)",
                   latents=torch.zeros(2, 3, 4, 4))
    one_line_error(pipe, buildings, TX, r"callback_on_step_end_tensor_inputs: \['condition'\]; expected names among "
                   r"\['latents'\]", callback_on_step_end=lambda *args: {},
                   callback_on_step_end_tensor_inputs=["condition"])
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


def test_num_images_per_prompt_gives_each_input_its_own_noise_input_by_input(pipe, buildings):
    maps = run(pipe, buildings, num_images_per_prompt=2)
    assert maps.shape == (4, 1, SIZE, SIZE)
    assert (maps[0] - maps[1]).abs().max() > 1e-3
    # as diffusers orders them: input 0's maps first, the same as the inputs repeated in place
    repeated = run(pipe, buildings.repeat_interleave(2, dim=0), [tx for tx in TX for _ in range(2)])
    assert torch.equal(maps, repeated)


def test_given_latents_are_the_starting_noise(pipe, buildings):
    latent_size = SIZE // pipe.vae_scale_factor
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(2, pipe.vae.config.latent_channels, latent_size, latent_size, generator=generator)
    # the generator, past the starting noise, gives RadioDiff's steps their noise as in a call that drew it
    given = pipe(buildings, TX, num_inference_steps=3, latents=noise, generator=generator, output_type="pt").images
    assert torch.equal(given, run(pipe, buildings, seed=0))
    assert (run(pipe, buildings, latents=noise.flip(0)) - run(pipe, buildings)).abs().max() > 1e-3


def test_the_step_end_callback_sees_each_step_and_may_replace_the_latents(pipe, buildings):
    seen = []

    def record(pipeline, step_index, timestep, callback_kwargs):
        assert pipeline is pipe and set(callback_kwargs) == {"latents"}
        seen.append((step_index, float(timestep)))
        return {}

    assert torch.equal(run(pipe, buildings, callback_on_step_end=record), run(pipe, buildings))
    pipe.scheduler.set_timesteps(3)
    assert seen == list(enumerate(float(t) for t in pipe.scheduler.timesteps))

    def zero_the_last(pipeline, step_index, timestep, callback_kwargs):
        last = step_index == len(pipeline.scheduler.timesteps) - 1
        return {"latents": torch.zeros_like(callback_kwargs["latents"])} if last else callback_kwargs

    zeroed = run(pipe, buildings, callback_on_step_end=zero_the_last, output_type="latent")
    assert torch.equal(zeroed, torch.zeros_like(zeroed))


def test_latent_output_is_the_normalised_latents_that_decode_to_the_maps(pipe, buildings):
    latents = run(pipe, buildings, output_type="latent")
    latent_size = SIZE // pipe.vae_scale_factor
    assert latents.shape == (2, pipe.vae.config.latent_channels, latent_size, latent_size)
    config = pipe.vae.config
    with torch.no_grad():
        decoded = pipe.vae.decode(latents / config.scaling_factor + config.shift_factor).sample
    assert torch.equal(pipe.image_processor.postprocess(decoded, output_type="pt"), run(pipe, buildings))


def test_channel_last_arrays_as_np_output_returns_them_are_taken(pipe, buildings):
    reference = run(pipe, buildings)
    channel_last = buildings.permute(0, 2, 3, 1).numpy()
    transmitter_maps = np.stack([rasterize_transmitter(x, y, SIZE, SIZE).permute(1, 2, 0).numpy() for x, y in TX])
    assert channel_last.shape == (2, SIZE, SIZE, 1)
    assert torch.equal(run(pipe, channel_last, transmitter_maps), reference)
    assert torch.equal(run(pipe, channel_last[0], transmitter_maps[0]), run(pipe, buildings[:1], TX[:1]))
    as_np = run(pipe, buildings, output_type="np")
    assert run(pipe, as_np, TX, output_type="np").shape == as_np.shape  # a generated map goes back in


def test_a_transmitter_on_a_building_is_warned_of_with_its_map_and_pixel(pipe, buildings, caplog):
    with caplog.at_level("WARNING"):
        run(pipe, buildings, transmitter=[(20, 3), (5, 6)])
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert warnings == ["transmitter: map 1 has its transmitter at (x=5, y=6), a building pixel; the model was "
                        "trained on transmitters in free space"]


def test_components_that_do_not_fit_together_are_refused(exported_vae):
    encoder = build_condition_encoder("tiny", downsampling_factor=4)
    velocity_unet = build_denoiser("tiny", 3, encoder.config.out_channels, 1, SIZE // 4)
    with pytest.raises(ValueError, match=r"out_channels 3; the scheduler RadioDiffScheduler takes 2 prediction\(s\) per"):
        RadioDiffPipeline(exported_vae, velocity_unet, encoder, RadioDiffScheduler())
    narrow_unet = build_denoiser("tiny", 3, 4, 1, SIZE // 4)
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
