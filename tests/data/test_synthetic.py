"""The synthetic generator: city layouts, the propagation model, the RadioMapSeer encoding, files and determinism."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radiodiff.cli import main
from radiodiff.data.city import random_city
from radiodiff.data.propagation import (
    GAIN_CEILING_DB,
    GAIN_FLOOR_DB,
    PropagationModel,
    encode_gain,
    path_gain_db,
    prepare_city,
)
from radiodiff.data.synthetic import generate_map, synthesize


def _gray_of(gain_db: float) -> float:
    return (gain_db - GAIN_FLOOR_DB) / (GAIN_CEILING_DB - GAIN_FLOOR_DB) * 255


def test_encoding_maps_the_documented_db_range_onto_0_255():
    gains = np.array([GAIN_CEILING_DB, GAIN_FLOOR_DB, -97.42, -200.0, -np.inf, -30.0])
    assert encode_gain(gains).tolist() == [255, 0, 128, 0, 0, 255]


def test_line_of_sight_gain_decays_log_distance_from_the_ceiling_at_one_metre():
    open_field = np.zeros((64, 64), dtype=bool)
    gain = path_gain_db(prepare_city(open_field), (32, 32))
    metres_per_pixel = 256 / 64
    exponent = PropagationModel().exponent
    for pixels in (1, 5, 20):
        expected = GAIN_CEILING_DB - 10 * exponent * np.log10(pixels * metres_per_pixel)
        assert gain[32, 32 + pixels] == pytest.approx(expected)
    assert gain[32, 32] == pytest.approx(GAIN_CEILING_DB)


def _wall_city(scale: int = 1) -> np.ndarray:
    """A ``64 * scale`` px city with one wall (rows 20-43, columns 30-33 at scale 1) east of (32, 10)."""
    buildings = np.zeros((64 * scale, 64 * scale), dtype=bool)
    buildings[20 * scale : 44 * scale, 30 * scale : 34 * scale] = True
    return buildings


def test_a_wall_casts_a_shadow_that_diffraction_fills_but_does_not_light():
    buildings = _wall_city()
    gain = path_gain_db(prepare_city(buildings), (32, 10))
    behind, beside = gain[32, 50], gain[8, 50]  # equally far, one behind the wall, one in line of sight
    assert behind < beside - 10
    # energy reaches around the wall's ends: the shadow is above the truncation floor
    assert behind > GAIN_FLOOR_DB
    # and it deepens the further the receiver hides behind the wall
    assert gain[32, 50] < gain[24, 50]
    assert np.isneginf(gain[buildings]).all()


def test_the_shadow_edge_fades_over_metres_at_one_metre_per_pixel():
    gain = path_gain_db(prepare_city(_wall_city(scale=4)), (128, 40))
    # along a column behind the wall, from line of sight into the shadow: no step of 6 dB from one metre to the next
    column = gain[:128, 180]
    assert column[0] - column[-1] > 15
    assert np.abs(np.diff(column)).max() < 6


def test_walled_in_courtyards_get_nothing():
    buildings = np.zeros((64, 64), dtype=bool)
    buildings[40:60, 40:60] = True
    buildings[45:55, 45:55] = False  # a courtyard with no way in
    gain = path_gain_db(prepare_city(buildings), (10, 10))
    assert encode_gain(gain)[45:55, 45:55].max() == 0


def test_cities_are_built_up_like_real_ones():
    fractions = [random_city(np.random.default_rng(seed), 128).mean() for seed in range(16)]
    assert 0.2 < np.mean(fractions) < 0.4
    assert 0.05 < min(fractions) and max(fractions) < 0.5


@pytest.mark.parametrize("size", [32, 64, 256])
def test_a_map_has_its_transmitters_in_the_streets_at_their_brightest_pixel(size):
    city = generate_map(seed=3, map_id=5, size=size, tx_per_map=3)
    assert city.gain_maps.shape == (3, size, size)
    assert city.gain_maps.dtype == np.uint8
    for (row, col), gain_map in zip(city.transmitters, city.gain_maps):
        assert not city.buildings[row, col]
        assert gain_map[row, col] == gain_map.max() == 255
        assert (gain_map[city.buildings] == 0).all()


def test_maps_are_a_function_of_seed_and_map_id_only():
    first = generate_map(seed=1, map_id=2, size=32, tx_per_map=2)
    again = generate_map(seed=1, map_id=2, size=32, tx_per_map=2)
    other_seed = generate_map(seed=2, map_id=2, size=32, tx_per_map=2)
    np.testing.assert_array_equal(first.gain_maps, again.gain_maps)
    assert not np.array_equal(first.buildings, other_seed.buildings)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_synth_writes_the_radiomapseer_layout(tmp_path):
    assert main(["synth", "--out", str(tmp_path), "--maps", "2", "--tx-per-map", "3", "--size", "32"]) == 0
    files = set(_tree(tmp_path))
    expected = {f"gain/DPM/{m}_{t}.png" for m in range(2) for t in range(3)}
    expected |= {f"png/antennas/{m}_{t}.png" for m in range(2) for t in range(3)}
    expected |= {f"png/buildings_complete/{m}.png" for m in range(2)} | {f"antenna/{m}.json" for m in range(2)}
    assert files == expected
    city = generate_map(seed=0, map_id=1, size=32, tx_per_map=3)
    assert json.loads((tmp_path / "antenna" / "1.json").read_text()) == [[int(c), int(r)] for r, c in city.transmitters]
    buildings = np.asarray(Image.open(tmp_path / "png" / "buildings_complete" / "1.png"))
    np.testing.assert_array_equal(buildings == 255, city.buildings)
    antenna = np.asarray(Image.open(tmp_path / "png" / "antennas" / "1_2.png"))
    assert list(zip(*np.nonzero(antenna))) == [tuple(city.transmitters[2])]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "gain" / "DPM" / "1_2.png")), city.gain_maps[2])


def test_synth_output_is_identical_for_one_and_two_workers_which_are_spawned(tmp_path, monkeypatch):
    import multiprocessing

    start_methods = []
    get_context = multiprocessing.get_context

    def recording_get_context(method=None):
        start_methods.append(method)
        return get_context(method)

    monkeypatch.setattr(multiprocessing, "get_context", recording_get_context)
    for workers in (1, 2):
        synthesize(tmp_path / f"w{workers}", maps=5, tx_per_map=2, size=32, seed=7, workers=workers)
    assert _tree(tmp_path / "w1") == _tree(tmp_path / "w2")
    # not forked: a fork of the trainer's process, whose torch thread pools are running, can hang
    assert start_methods == ["spawn"]


def test_synth_preview_shows_cities_beside_their_gain_maps(tmp_path):
    preview = tmp_path / "grid.png"
    synthesize(tmp_path / "out", maps=2, tx_per_map=2, size=32, preview=preview)
    grid = np.asarray(Image.open(preview))
    gap = 2
    assert grid.shape == (2 * 32 + gap, 3 * 32 + 2 * gap)
    city = generate_map(seed=0, map_id=1, size=32, tx_per_map=2)
    np.testing.assert_array_equal(grid[32 + gap :, 2 * (32 + gap) :], city.gain_maps[1])


def test_synth_refuses_an_empty_request(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--maps", "0", "--tx-per-map", "3"]) == 2
    assert "expected at least one map" in capsys.readouterr().err
