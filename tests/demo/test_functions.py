"""The demo's functions, without Gradio: cities from any image, the transmitter kept off the buildings, the models'
maps as the pipelines make them, colour images, and the app's handlers on a dataset city."""

import numpy as np
import pytest
import torch
from PIL import Image

from radiodiff.data import build_dataset, unaugmented
from radiodiff.config.loading import load_data_config
from radiodiff.data.propagation import GAIN_CEILING_DB, GAIN_FLOOR_DB
from radiodiff.demo.app import DemoHandlers, Scene
from radiodiff.demo.functions import (
    BUILDING_RGB,
    TRANSMITTER_RGB,
    city_from_image,
    city_image,
    colorize_gain,
    dataset_cities,
    display_scale,
    error_db,
    load_models,
    physics_baseline,
    place_transmitter,
    run_model,
)
from radiodiff.evaluation import log_distance_map
from radiodiff.pipelines import rasterize_transmitter

from .conftest import SIZE


def block_city() -> np.ndarray:
    buildings = np.zeros((SIZE, SIZE), np.float32)
    buildings[8:16, 8:20] = 1.0
    return buildings


def test_a_colour_image_of_another_size_is_converted_and_resized_with_a_note():
    picture = np.zeros((100, 100, 3), np.uint8)
    picture[25:50, 25:75] = (255, 255, 255)
    buildings, note = city_from_image(picture, SIZE)
    assert buildings.shape == (SIZE, SIZE) and set(np.unique(buildings)) == {0.0, 1.0}
    assert note == "Building image converted from RGB to grayscale and resized from 100x100 to the model's 32x32."
    assert buildings[10, 15] == 1 and buildings[20, 15] == 0 and buildings[10, 3] == 0


def test_an_8bit_map_of_the_models_size_is_taken_as_it_is_without_a_note():
    picture = (block_city() * 255).astype(np.uint8)
    buildings, note = city_from_image(Image.fromarray(picture, mode="L"), SIZE)
    assert note is None
    np.testing.assert_array_equal(buildings, block_city())


def test_a_transmitter_on_a_building_moves_to_the_nearest_free_pixel_with_a_note():
    (x, y), note = place_transmitter(block_city(), 10, 9)  # one row below the block's top edge (row 8)
    assert (x, y) == (10, 7)
    assert note == ("The transmitter at (x=10, y=9) was on a building; moved to the nearest free pixel (x=10, y=7).")


def test_a_transmitter_in_the_street_stays_and_one_outside_the_map_comes_to_its_edge():
    assert place_transmitter(block_city(), 3, 25) == ((3, 25), None)
    assert place_transmitter(block_city(), 40, -2) == ((SIZE - 1, 0), None)


def test_a_city_of_buildings_only_has_no_place_for_a_transmitter():
    with pytest.raises(ValueError, match="no free pixel"):
        place_transmitter(np.ones((SIZE, SIZE), np.float32), 3, 3)


def test_the_models_map_is_the_pipelines_own_output_for_the_seed(runs):
    folder, pipe = runs["ldm"]
    (model,) = load_models([folder])
    assert (model.label, model.map_size, model.default_steps) == ("ldm", SIZE, 2)
    radio_map = run_model(model, block_city(), (3, 25), steps=3, seed=11)
    expected = pipe(torch.from_numpy(block_city()), (3, 25), num_inference_steps=3,
                    generator=torch.Generator().manual_seed(11), output_type="pt").images[0, 0]
    torch.testing.assert_close(torch.from_numpy(radio_map), expected)
    assert not np.allclose(radio_map, run_model(model, block_city(), (3, 25), steps=3, seed=12))


def test_a_pixel_space_model_runs_at_its_unet_s_map_size(runs):
    folder, pipe = runs["pixel"]
    (model,) = load_models([folder])
    assert model.map_size == SIZE and model.samples
    radio_map = run_model(model, block_city(), (3, 25), steps=2, seed=4)
    expected = pipe(torch.from_numpy(block_city()), (3, 25), num_inference_steps=2,
                    generator=torch.Generator().manual_seed(4), output_type="pt").images[0, 0]
    torch.testing.assert_close(torch.from_numpy(radio_map), expected)


def test_a_one_pass_model_ignores_the_steps(runs):
    (model,) = load_models([runs["unet"][0]])
    assert model.default_steps is None and not model.samples
    np.testing.assert_array_equal(run_model(model, block_city(), (3, 25), steps=1, seed=0),
                                  run_model(model, block_city(), (3, 25), steps=7, seed=5))


def test_a_folder_that_is_not_a_pipeline_is_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no model_index.json"):
        load_models([tmp_path])


def test_pipelines_of_different_map_sizes_are_not_compared(runs, tmp_path):
    from tests.helpers.map_fixtures import tiny_pipeline

    tiny_pipeline(size=64).save_pretrained(tmp_path / "big")
    with pytest.raises(ValueError, match="different map sizes .*ldm 32, big 64"):
        load_models([runs["ldm"][0], tmp_path / "big"])


def test_the_dataset_cities_are_the_test_splits_maps_at_their_transmitters(runs):
    folder, _ = runs["ldm"]
    cities = dataset_cities(folder, None, "test", SIZE)
    dataset = unaugmented(build_dataset(load_data_config(folder.parent / "config.yaml"), "test", with_conditions=True))
    assert [city.name for city in cities] == [dataset[i]["name"] for i in range(len(dataset))]
    first = dataset[0]
    x, y = cities[0].transmitter
    assert first["transmitter"][0, y, x] == 1
    np.testing.assert_array_equal(cities[0].buildings, first["buildings"][0].numpy())
    np.testing.assert_allclose(cities[0].truth, (first["gain_map"][0].numpy() + 1) / 2)


def test_a_pipeline_without_a_run_config_has_no_dataset_cities(runs, tmp_path):
    runs["ldm"][1].save_pretrained(tmp_path / "downloaded")
    assert dataset_cities(tmp_path / "downloaded", None, "test", SIZE) == []


def test_the_physics_baseline_is_the_evaluations_log_distance_map():
    expected = log_distance_map(torch.from_numpy(block_city())[None, None],
                                rasterize_transmitter(3, 25, SIZE, SIZE)[None])
    np.testing.assert_array_equal(physics_baseline(block_city(), (3, 25)), expected[0, 0].numpy())


def test_the_error_is_in_db_of_radiomapseers_range():
    truth = np.zeros((2, 2), np.float32)
    np.testing.assert_allclose(error_db(np.full((2, 2), 0.5, np.float32), truth),
                               0.5 * (GAIN_CEILING_DB - GAIN_FLOOR_DB), rtol=1e-6)


def test_a_map_is_drawn_in_viridis_enlarged_with_buildings_grey_and_the_transmitter_marked():
    import matplotlib

    radio_map = np.linspace(0, 1, SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    image = colorize_gain(radio_map, block_city(), (3, 25))
    scale = display_scale(SIZE)
    assert image.shape == (SIZE * scale, SIZE * scale, 3) and scale > 1
    viridis = matplotlib.colormaps["viridis"](radio_map[2, 30], bytes=True)[:3]
    assert tuple(image[2 * scale, 30 * scale]) == tuple(viridis)
    assert tuple(image[10 * scale, 10 * scale]) == BUILDING_RGB
    assert tuple(image[25 * scale + scale // 2, 3 * scale + scale // 2]) == TRANSMITTER_RGB


def test_a_click_on_the_enlarged_city_is_the_map_pixel_under_it(runs):
    handlers = DemoHandlers(load_models([runs["ldm"][0]]), [])
    scale = display_scale(SIZE)
    assert city_image(block_city(), None).shape[0] == SIZE * scale
    assert handlers.clicked(Scene(block_city()), 5 * scale + scale - 1, 9 * scale) == (5, 9)


def captions(rendered) -> list[str]:
    return [caption for _, caption in rendered[3]]


def test_a_dataset_city_at_its_transmitter_shows_the_truth_and_each_models_error(runs):
    models = load_models([runs["ldm"][0], runs["unet"][0]])
    cities = dataset_cities(runs["ldm"][0], None, "test", SIZE)
    handlers = DemoHandlers(models, cities)
    scene, x, y = handlers.dataset_city(cities[1].name)
    rendered = handlers.render(scene, x, y, ["ldm", "unet"], 2, 0)
    assert rendered[1:3] == cities[1].transmitter
    assert captions(rendered)[0].startswith("ldm (2 steps, ") and captions(rendered)[1].startswith("unet (one pass, ")
    assert captions(rendered)[2:4] == ["physics baseline (log-distance)", "ground truth"]
    assert [c.split(" (")[0] for c in captions(rendered)[4:]] == ["|error| of ldm", "|error| of unet"]
    assert rendered[5] == ""


def test_moving_a_dataset_citys_transmitter_drops_the_truth_with_a_note(runs):
    models = load_models([runs["ldm"][0]])
    cities = dataset_cities(runs["ldm"][0], None, "test", SIZE)
    handlers = DemoHandlers(models, cities)
    scene, x, y = handlers.dataset_city(cities[0].name)
    free = np.argwhere(scene.buildings < 0.5)
    row, col = next((r, c) for r, c in free if (c, r) != (x, y))
    rendered = handlers.render(scene, int(col), int(row), ["ldm"], 2, 0)
    assert "ground truth" not in captions(rendered) and len(captions(rendered)) == 2
    assert "Ground truth exists for the map's own transmitter only" in rendered[5]


def test_the_downloadable_map_is_what_radiodiff_generate_writes(runs):
    folder, pipe = runs["ldm"]
    handlers = DemoHandlers(load_models([folder]), [])
    rendered = handlers.render(Scene(block_city()), 12, 10, ["ldm"], 2, 4)
    assert rendered[1:3] == (12, 7)
    assert "moved to the nearest free pixel (x=12, y=7)" in rendered[5]
    written = np.asarray(Image.open(rendered[4]))
    expected = pipe(torch.from_numpy(block_city()), (12, 7), num_inference_steps=2,
                    generator=torch.Generator().manual_seed(4), output_type="pt").images[0, 0].numpy()
    np.testing.assert_array_equal(written, np.where(block_city() > 0.5, 0, np.rint(expected * 255)).astype(np.uint8))


def test_a_drawing_at_display_size_becomes_the_city_without_a_note(runs):
    handlers = DemoHandlers(load_models([runs["ldm"][0]]), [])
    scale = display_scale(SIZE)
    canvas = (block_city() * 255).astype(np.uint8).repeat(scale, axis=0).repeat(scale, axis=1)
    composite = np.stack([canvas] * 3 + [np.full_like(canvas, 255)], axis=-1)  # RGBA, as the editor sends it
    scene, x, y = handlers.drawn_city({"background": None, "layers": [], "composite": composite}, 3, 4)
    np.testing.assert_array_equal(scene.buildings, block_city())
    assert (scene.note, scene.truth, x, y) == (None, None, 3, 4)
    with pytest.raises(ValueError, match="nothing drawn"):
        handlers.drawn_city({"background": None, "layers": [], "composite": None}, 3, 4)


def test_no_model_ticked_is_one_clear_error(runs):
    handlers = DemoHandlers(load_models([runs["ldm"][0]]), [])
    with pytest.raises(ValueError, match="no model chosen"):
        handlers.render(Scene(block_city()), 3, 3, [], 2, 0)
