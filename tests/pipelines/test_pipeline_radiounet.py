"""RadioUNetPipeline: RadioDiffPipeline's call on RadioUNet, saved and loaded the same ways."""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DiffusionPipeline

from tests.helpers.diffusers_alone import run_with_diffusers_alone
from tests.helpers.map_fixtures import tiny_pipeline
from radiodiff.models import RadioUNetModel
from radiodiff.pipelines import RadioDiffPipeline, RadioUNetPipeline, rasterize_transmitter
from radiodiff.pipelines import pipeline_radiounet as pipeline_module

SIZE = 32  # as tests/pipelines/conftest.py's buildings
TX = [(20, 3), (2, 30)]  # (x, y), one per building map, in free space


def make_pipeline(preset: str) -> RadioUNetPipeline:
    torch.manual_seed(0)
    model = RadioUNetModel.from_preset(preset, sample_size=SIZE).eval()
    # lift the final map so that some of it lies above 1, where the pipeline clamps
    with torch.no_grad():
        (model.second_unet or model.first_unet).head[1][0].bias += 1.0
    return RadioUNetPipeline(unet=model)


@pytest.fixture(scope="module", params=["quickstart", "unet"])
def pipe(request) -> RadioUNetPipeline:
    return make_pipeline(request.param)


def transmitter_maps() -> torch.Tensor:
    return torch.stack([rasterize_transmitter(x, y, SIZE, SIZE) for x, y in TX])


def run(pipe, buildings, transmitter=TX, **kwargs) -> torch.Tensor:
    kwargs.setdefault("output_type", "pt")
    return pipe(buildings, transmitter, generator=torch.Generator().manual_seed(0), **kwargs).images


def test_the_maps_are_the_model_s_forward_clamped_to_zero_one(pipe, buildings):
    with torch.no_grad():
        gain = pipe.unet(buildings, transmitter_maps()).sample
    assert gain.max() > 1 and gain.min() < 1  # the clamp below is exercised
    maps = run(pipe, buildings)
    assert maps.shape == (2, 1, SIZE, SIZE)
    assert torch.equal(maps, gain.clamp(0, 1))


def test_output_types_hold_the_same_maps(pipe, buildings):
    maps = run(pipe, buildings)
    as_np = run(pipe, buildings, output_type="np")
    assert isinstance(as_np, np.ndarray) and as_np.shape == (2, SIZE, SIZE, 1)
    np.testing.assert_array_equal(as_np, maps.permute(0, 2, 3, 1).numpy())
    images = run(pipe, buildings, output_type="pil")
    assert [image.mode for image in images] == ["L", "L"]
    np.testing.assert_array_equal(np.array(images[1]), (maps[1, 0].numpy() * 255).round().astype(np.uint8))
    (as_tuple,) = pipe(buildings, TX, output_type="pt", return_dict=False)
    assert torch.equal(as_tuple, maps)


def test_sampling_arguments_are_taken_and_change_nothing(pipe, buildings):
    reference = run(pipe, buildings)
    assert torch.equal(pipe(buildings, TX, output_type="pt").images, reference)
    assert torch.equal(run(pipe, buildings, num_inference_steps=50), reference)
    assert torch.equal(pipe(buildings, TX, generator=torch.Generator().manual_seed(7), output_type="pt").images,
                       reference)
    repeated = run(pipe, buildings, num_images_per_prompt=3)
    assert torch.equal(repeated, reference.repeat_interleave(3, dim=0))


def test_inputs_as_arrays_images_lists_and_coordinates_give_the_same_maps(pipe, buildings):
    reference = run(pipe, buildings, transmitter_maps())
    eight_bit = (buildings[:, 0] * 255).to(torch.uint8).numpy()
    images = [PIL.Image.fromarray(city) for city in eight_bit]
    assert torch.equal(run(pipe, buildings, TX), reference)
    assert torch.equal(run(pipe, images, [m[0] for m in transmitter_maps()]), reference)
    assert torch.equal(run(pipe, buildings.permute(0, 2, 3, 1).numpy(), TX), reference)
    # one map against a batch of one: batch size can change a CPU kernel's rounding
    assert torch.equal(run(pipe, buildings[0, 0], TX[0]), run(pipe, buildings[:1], transmitter_maps()[:1]))


@pytest.mark.parametrize(
    "call, match",
    [
        (dict(output_type="latent"), r"output_type: 'latent'; expected 'pil', 'np' or 'pt' \(RadioUNet has no"),
        (dict(num_inference_steps=0), "num_inference_steps: 0; expected an integer >= 1"),
        (dict(num_images_per_prompt=0), "num_images_per_prompt: 0; expected an integer >= 1"),
        (dict(latents=torch.zeros(2, 3, 8, 8)), "latents: given; RadioUNet maps in one pass"),
        (dict(eta=0.0), "eta: given; RadioUNet maps in one pass"),
        (dict(callback_on_step_end=lambda *args: {}), "callback_on_step_end: given; RadioUNet maps in one pass"),
    ],
)
def test_settings_only_a_sampler_could_honour_are_refused_with_one_line(pipe, buildings, call, match):
    with pytest.raises(ValueError, match=match) as error:
        run(pipe, buildings, **call)
    assert "\n" not in str(error.value)


def test_maps_of_another_size_than_the_model_s_are_refused(pipe):
    with pytest.raises(ValueError, match="buildings: maps of 64x64; expected 32x32, the model's sample_size"):
        pipe(torch.zeros(1, 1, 64, 64), (3, 3))


def saved_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_save_pretrained_writes_a_safetensors_folder_that_carries_its_code_and_both_loaders_restore_it(
    pipe, buildings, tmp_path
):
    pipe.save_pretrained(tmp_path)
    assert saved_files(tmp_path) == [
        "model_index.json", "pipeline_radiounet.py", "radio_map_pipeline_utils.py",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/radiounet.py",
    ]
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_radiounet", "RadioUNetPipeline"]
    assert index["unet"] == ["radiounet", "RadioUNetModel"]
    assert (tmp_path / "pipeline_radiounet.py").read_text() == Path(pipeline_module.__file__).read_text()

    reference = run(pipe, buildings)
    loaded = RadioUNetPipeline.from_pretrained(tmp_path)
    assert type(loaded) is RadioUNetPipeline and type(loaded.unet) is RadioUNetModel
    original, restored = pipe.unet.state_dict(), loaded.unet.state_dict()
    assert original.keys() == restored.keys() and all(torch.equal(original[k], restored[k]) for k in original)
    torch.testing.assert_close(run(loaded, buildings), reference, rtol=0, atol=1e-6)

    generic = DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(generic).__name__ == "RadioUNetPipeline" and type(generic) is not RadioUNetPipeline
    torch.testing.assert_close(run(generic, buildings), reference, rtol=0, atol=1e-6)


def test_diffusers_alone_loads_the_folder_with_its_code_and_gives_the_same_maps(buildings, tmp_path):
    pipe = make_pipeline("quickstart")
    pipe.save_pretrained(tmp_path / "pipeline")
    result = run_with_diffusers_alone(tmp_path / "pipeline", buildings, TX, tmp_path)
    assert result["class"].startswith("diffusers_modules.")
    torch.testing.assert_close(result["maps"], run(pipe, buildings), rtol=0, atol=1e-6)


def test_a_folder_of_the_other_pipeline_is_refused_naming_both(pipe, tmp_path):
    tiny_pipeline(size=SIZE).save_pretrained(tmp_path / "radiodiff")
    with pytest.raises(ValueError, match="radiodiff: a RadioDiffPipeline folder; expected a RadioUNetPipeline folder"):
        RadioUNetPipeline.from_pretrained(tmp_path / "radiodiff")
    pipe.save_pretrained(tmp_path / "radiounet")
    with pytest.raises(ValueError, match="radiounet: a RadioUNetPipeline folder; expected a RadioDiffPipeline folder"):
        RadioDiffPipeline.from_pretrained(tmp_path / "radiounet")


def test_the_pipeline_and_model_are_exported_from_the_package_top_level():
    import radiodiff

    assert radiodiff.RadioUNetPipeline is RadioUNetPipeline
    assert radiodiff.RadioUNetModel is RadioUNetModel
