"""The Sionna engine: the scene it builds from a building raster, and its maps against free space, the building's
shadow, the fast engine's grid and itself. Tiny scenes and few rays: the whole file takes seconds on 2 cores."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from radiodiff.cli import main
from radiodiff.data.city import meters_per_pixel
from radiodiff.data.propagation import encode_gain, visible_pixels
from radiodiff.data.raytracing import (
    RaytracingError,
    RaytracingSettings,
    footprint_outlines,
    import_sionna,
    pixel_centre_xy,
    receiver_rectangles,
    wall_mesh,
)
from radiodiff.data.synthetic import synthesize
from tests.helpers.tiny_runs import REPO, subprocess_env

SIZE = 64
TRANSMITTER = (32, 10)
# one Dr.Jit thread: the suite shares 2 cores, and one thread makes the sums, so the maps, the same on every run
THREADS = 1


def _block_city() -> np.ndarray:
    """One 16 m x 96 m building (rows 20-43, columns 30-33) east of the transmitter at (32, 10)."""
    buildings = np.zeros((SIZE, SIZE), dtype=bool)
    buildings[20:44, 30:34] = True
    return buildings


def _triangle_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = vertices[faces]
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def test_walls_of_a_block_are_four_quads_sharing_their_corners_with_normals_pointing_out():
    heights = np.where(_block_city(), 25.0, 0.0)
    vertices, faces = wall_mesh(heights)
    assert len(faces) == 8 and len(vertices) == 8  # corner vertices shared, so Sionna sees the corners as wedges
    assert set(np.round(vertices[:, 2], 6)) == {0.0, 25.0}
    # the block's footprint in metres: columns 30-34 and rows 20-44 at 4 m per pixel, north up
    assert (vertices[:, 0].min(), vertices[:, 0].max()) == (30 * 4 - 128, 34 * 4 - 128)
    assert (vertices[:, 1].min(), vertices[:, 1].max()) == (128 - 44 * 4, 128 - 20 * 4)
    centre = vertices.mean(axis=0)
    triangle_centres = vertices[faces].mean(axis=1)
    outward = np.einsum("fk,fk->f", _triangle_normals(vertices, faces), triangle_centres - centre)
    assert (outward > 0).all()


def test_a_building_at_an_angle_gets_straight_walls_not_the_raster_s_staircase():
    rows, cols = np.indices((SIZE, SIZE)) + 0.5
    along = np.cos(0.5) * (cols - 32) + np.sin(0.5) * (rows - 32)
    across = -np.sin(0.5) * (cols - 32) + np.cos(0.5) * (rows - 32)
    buildings = (np.abs(along) < 20) & (np.abs(across) < 6)
    (outline,) = footprint_outlines(buildings)
    assert len(outline) - 1 <= 6  # a rectangle, give or take a corner; its staircase has dozens of edges
    area = 0.5 * abs(np.dot(outline[:-1, 0], outline[1:, 1]) - np.dot(outline[1:, 0], outline[:-1, 1]))
    assert area == pytest.approx(buildings.sum(), rel=0.05)


def test_receiver_rectangles_stand_on_every_street_pixel_and_face_the_transmitter():
    buildings = _block_city()
    vertices, faces, pixels = receiver_rectangles(buildings, TRANSMITTER, rx_height_m=1.5)
    assert len(pixels) == (~buildings).sum() - 1  # not the transmitter's own pixel
    assert not buildings[pixels[:, 0], pixels[:, 1]].any()
    normals = _triangle_normals(vertices, faces)[::2]
    towards_transmitter = pixel_centre_xy(np.array([TRANSMITTER]), SIZE) - pixel_centre_xy(pixels, SIZE)
    cosine = np.einsum("nk,nk->n", normals[:, :2], towards_transmitter) / (
        np.linalg.norm(normals, axis=1) * np.linalg.norm(towards_transmitter, axis=1)
    )
    np.testing.assert_allclose(cosine, 1.0, atol=1e-6)
    # 1.4 m above and below the receivers' 1.5 m, clear of the ground
    np.testing.assert_allclose([vertices[:, 2].min(), vertices[:, 2].max()], [0.1, 2.9])


def test_bad_settings_are_refused_naming_the_value():
    with pytest.raises(ValueError, match=r"building height \(30.0, 20.0\)"):
        RaytracingSettings(building_height_m=(30.0, 20.0))
    with pytest.raises(ValueError, match="max depth -1"):
        RaytracingSettings(max_depth=-1)


def test_a_missing_extra_is_one_line_naming_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mitsuba", None)  # what `import mitsuba` meets without the extra
    with pytest.raises(RaytracingError, match=r'pip install -e "\.\[sionna\]"'):
        import_sionna()


# CI installs the extra (.ci/run), so these run there; elsewhere they wait for `pip install -e ".[sionna]"`
needs_sionna = pytest.mark.skipif(importlib.util.find_spec("sionna") is None, reason="the sionna extra is not installed")


def _trace(buildings: np.ndarray, **settings) -> np.ndarray:
    from radiodiff.data.raytracing import CityRaytracer

    tracer = CityRaytracer(np.where(buildings, 25.0, 0.0), RaytracingSettings(**settings), threads=THREADS)
    return tracer.gain_db(TRANSMITTER, seed=1)


@pytest.fixture(scope="module")
def block_gain_db() -> np.ndarray:
    return _trace(_block_city(), samples_per_tx=200_000, max_depth=2)


def _distance_m(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.indices(shape)
    return np.hypot(rows - TRANSMITTER[0], cols - TRANSMITTER[1]) * meters_per_pixel(shape[0])


@needs_sionna
def test_line_of_sight_is_within_1_db_of_free_space_at_5_9_ghz():
    buildings = _block_city()
    # line of sight only: with the ground, its reflection would add up to 3 dB in power at grazing incidence
    gain = _trace(buildings, samples_per_tx=1_000_000, max_depth=0)
    distance = _distance_m(buildings.shape)
    wavelength = 299_792_458 / 5.9e9
    friis = 20 * np.log10(wavelength / (4 * np.pi * np.maximum(distance, 1.0)))
    # pixels two pixels clear of the shadow's edge (the fast engine's ray casting places it to a pixel, and a
    # receiver rectangle half in the shadow is neither lit nor dark), off the transmitter's own pixel
    clear = ndimage.binary_erosion(visible_pixels(buildings, TRANSMITTER), iterations=2) & (distance > 4)
    assert clear.sum() > 2000
    error = gain[clear] - friis[clear]
    assert np.abs(error).max() < 1.0, f"worst {np.abs(error).max():.2f} dB"


@needs_sionna
def test_the_building_casts_a_shadow_and_holds_zero_inside(block_gain_db):
    buildings = _block_city()
    encoded = encode_gain(block_gain_db)
    assert (encoded[buildings] == 0).all()
    # behind the building, and farther from the transmitter but in its line of sight past the building's corner
    behind, beside = block_gain_db[30:35, 45:55], block_gain_db[0:3, 45:55]
    assert np.isfinite(beside).all()
    assert np.max(behind) < np.min(beside) - 20


@needs_sionna
def test_the_transmitter_pixel_is_the_brightest_and_the_map_is_oriented_like_the_fast_engine_s(block_gain_db):
    from radiodiff.data.propagation import path_gain_db, prepare_city

    fast = encode_gain(path_gain_db(prepare_city(_block_city()), TRANSMITTER)).astype(float)
    sionna = encode_gain(block_gain_db).astype(float)
    assert np.unravel_index(sionna.argmax(), sionna.shape) == TRANSMITTER
    # the two engines' shadows line up: no turned or mirrored copy of the Sionna map matches the fast one as well
    agreement = {
        (turns, mirrored): np.corrcoef(fast.ravel(), np.rot90(sionna[:, ::-1] if mirrored else sionna, turns).ravel())[0, 1]
        for turns in range(4)
        for mirrored in (False, True)
    }
    assert max(agreement, key=agreement.get) == (0, False), agreement


def _synth(out, **overrides):
    # three cities: the fewest a leak-free split takes
    arguments = dict(maps=3, tx_per_map=2, size=SIZE, seed=3, engine="sionna", threads=THREADS,
                     raytracing=RaytracingSettings(samples_per_tx=20_000, max_depth=1))
    return synthesize(out, **{**arguments, **overrides})


def _files(root) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def sionna_set(tmp_path_factory):
    return _synth(tmp_path_factory.mktemp("sionna") / "set")


@needs_sionna
def test_same_seed_same_bytes_and_the_fast_engine_s_cities_and_transmitters(sionna_set, tmp_path):
    again = _files(_synth(tmp_path / "again"))
    assert again == _files(sionna_set)
    assert sorted(name for name in again if name.startswith("gain/")) == [
        f"gain/SionnaRT/{map_id}_{tx}.png" for map_id in range(3) for tx in range(2)
    ]
    # the fast engine writes the same building and transmitter images for the seed, beside its own gain maps
    fast = _files(synthesize(tmp_path / "again", maps=3, tx_per_map=2, size=SIZE, seed=3))
    for name, content in again.items():
        if not name.startswith("gain/"):
            assert fast[name] == content, name
    for map_id in range(3):
        buildings = np.asarray(Image.open(sionna_set / "png" / "buildings_complete" / f"{map_id}.png")) > 0
        for tx in range(2):
            gain = np.asarray(Image.open(sionna_set / "gain" / "SionnaRT" / f"{map_id}_{tx}.png"))
            antenna = np.asarray(Image.open(sionna_set / "png" / "antennas" / f"{map_id}_{tx}.png"))
            assert gain.shape == (SIZE, SIZE) and (gain[buildings] == 0).all()
            assert gain[antenna == 255].item() == 255


@needs_sionna
def test_a_resumed_run_traces_only_the_missing_cities_and_refuses_other_settings(sionna_set, tmp_path):
    out = tmp_path / "set"
    _synth(out, maps=1)
    first_city = (out / "gain" / "SionnaRT" / "0_0.png").stat().st_mtime_ns
    _synth(out)
    assert (out / "gain" / "SionnaRT" / "0_0.png").stat().st_mtime_ns == first_city
    assert _files(out) == _files(sionna_set)
    with pytest.raises(ValueError, match=r"synth\.json: .*\(samples_per_tx differ\)"):
        _synth(out, raytracing=RaytracingSettings(samples_per_tx=30_000, max_depth=1))


@needs_sionna
def test_the_loader_reads_the_sionna_maps_by_their_simulation_name(sionna_set):
    from radiodiff.data import RadioMapSeerDataset

    dataset = RadioMapSeerDataset(sionna_set, "train", simulation="SionnaRT", map_size=SIZE, protocol="leakfree")
    assert len(dataset) > 0 and dataset[0]["gain_map"].shape == (1, SIZE, SIZE)


@needs_sionna
def test_without_llvm_the_cli_says_in_one_line_what_to_install(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "radiodiff", "synth", "--out", str(tmp_path / "set"), "--maps", "1", "--tx-per-map",
         "1", "--size", "32", "--engine", "sionna"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**subprocess_env(), "DRJIT_LIBLLVM_PATH": str(tmp_path / "libLLVM.so")},
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "libllvm19" in errors[0] and "DRJIT_LIBLLVM_PATH" in errors[0], result.stderr
    assert not (tmp_path / "set").exists()  # said before anything is written


@needs_sionna
def test_the_cli_passes_depth_rays_and_a_height_range(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--out", str(out), "--maps", "1", "--tx-per-map", "1", "--size", "32", "--engine", "sionna",
                 "--rays", "5000", "--max-depth", "1", "--building-height", "10", "40", "--threads", "1"]) == 0
    assert "wrote 1 maps" in capsys.readouterr().out
    assert '"building_height_m": [10.0, 40.0]' in (out / "gain" / "SionnaRT" / "synth.json").read_text()
    assert os.path.isfile(out / "gain" / "SionnaRT" / "0_0.png")
