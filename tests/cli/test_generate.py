"""``radiodiff generate``: PNGs in, RadioMapSeer-encoded PNGs out, one map or a folder; bad inputs in one line."""

import numpy as np
import pytest
import torch
from tests.helpers.map_fixtures import tiny_pipeline, tiny_radiounet_pipeline
from PIL import Image

from radiodiff.cli import main
from radiodiff.data.images import signed_tensor
from radiodiff.evaluation import to_unit_range

SIZE = 32


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L").save(path)
    return path


def city(offset: int) -> np.ndarray:
    buildings = np.zeros((SIZE, SIZE), np.uint8)
    buildings[4 + offset : 12 + offset, 6:20] = 255
    buildings[20:28, 2 + offset : 10 + offset] = 255
    return buildings


def antenna(x: int, y: int) -> np.ndarray:
    transmitter = np.zeros((SIZE, SIZE), np.uint8)
    transmitter[y, x] = 255
    return transmitter


TX = {0: [(25, 3), (1, 15)], 1: [(28, 28), (16, 16)]}  # (x, y) per map id


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A saved tiny pipeline and RadioMapSeer-style input folders (2 cities x 2 transmitters)."""
    root = tmp_path_factory.mktemp("generate")
    pipe = tiny_pipeline("radiodiff", size=SIZE)
    pipe.register_to_config(default_num_inference_steps=2)
    pipe.save_pretrained(root / "pipeline")
    for map_id, positions in TX.items():
        write_png(root / "png" / "buildings_complete" / f"{map_id}.png", city(map_id))
        for tx, (x, y) in enumerate(positions):
            write_png(root / "png" / "antennas" / f"{map_id}_{tx}.png", antenna(x, y))
    return root, pipe


def generate(root, *args):
    return main(["generate", "--pipeline", str(root / "pipeline"), "--steps", "2", "--device", "cpu", *args])


def read_back(path) -> torch.Tensor:
    """A written map as the package's loaders read a gain map, then on [0, 1]."""
    array = np.asarray(Image.open(path))
    return to_unit_range(signed_tensor(array))[0]


def test_the_written_png_reads_back_as_the_pipelines_prediction_with_buildings_zero(inputs, tmp_path):
    root, pipe = inputs
    out = tmp_path / "map.png"
    assert generate(root, "--buildings", str(root / "png/buildings_complete/0.png"), "--tx", "25,3",
                    "--out", str(out), "--seed", "7") == 0
    image = Image.open(out)
    assert (image.mode, image.size) == ("L", (SIZE, SIZE))
    buildings = torch.from_numpy(city(0) / 255.0).float()
    expected = pipe(buildings, (25, 3), num_inference_steps=2, generator=[torch.Generator().manual_seed(7)],
                    output_type="pt").images[0, 0]
    written = read_back(out)
    free = buildings == 0
    assert (written[~free] == 0).all()
    torch.testing.assert_close(written[free], expected[free], rtol=0, atol=0.5 / 255 + 1e-6)
    assert written[free].std() > 0


def test_a_transmitter_png_and_the_same_pixel_as_tx_give_the_same_map_and_a_figure(inputs, tmp_path):
    root, _ = inputs
    buildings = str(root / "png/buildings_complete/1.png")
    assert generate(root, "--buildings", buildings, "--tx", "16,16", "--out", str(tmp_path / "a.png")) == 0
    assert generate(root, "--buildings", buildings, "--transmitter", str(root / "png/antennas/1_1.png"),
                    "--out", str(tmp_path / "b.png"), "--figure", str(tmp_path / "figure.png")) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert Image.open(tmp_path / "figure.png").size[0] > 2 * SIZE


def test_a_folder_of_inputs_gives_one_map_per_transmitter_seeded_in_name_order(inputs, tmp_path, capsys):
    root, _ = inputs
    out = tmp_path / "maps"
    assert generate(root, "--buildings", str(root / "png/buildings_complete"), "--transmitter",
                    str(root / "png/antennas"), "--out", str(out), "--seed", "3", "--batch-size", "3",
                    "--figure", str(tmp_path / "figures")) == 0
    names = ["0_0.png", "0_1.png", "1_0.png", "1_1.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == names
    assert "wrote 4 maps" in capsys.readouterr().out
    # the third map (index 2) is sampled with seed 3 + 2, whatever the batch it fell in
    assert generate(root, "--buildings", str(root / "png/buildings_complete/1.png"), "--tx", "28,28",
                    "--out", str(tmp_path / "single.png"), "--seed", "5") == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / "1_0.png")), np.asarray(Image.open(tmp_path / "single.png")))


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda r, t: ["--buildings", str(r / "missing.png"), "--tx", "1,1"], "missing.png: not found"),
        (lambda r, t: ["--buildings", str(write_png(t / "big.png", np.zeros((64, 64)))), "--tx", "1,1"],
         "big.png: a 64x64 image; expected 32x32"),
        (lambda r, t: ["--buildings", str(r / "png/buildings_complete/0.png"), "--transmitter",
                       str(write_png(t / "dark.png", np.zeros((SIZE, SIZE))))],
         "dark.png: 0 lit pixels; expected exactly one"),
        (lambda r, t: ["--buildings", str(r / "png/buildings_complete/0.png"), "--tx", "32,4"],
         "--tx 32,4: outside the 32x32 map"),
        (lambda r, t: ["--buildings", str(r / "png/buildings_complete/0.png"), "--tx", "left"],
         "--tx 'left': expected X,Y pixel coordinates"),
        (lambda r, t: ["--buildings", str(r / "png/buildings_complete"), "--tx", "1,1"],
         "is a folder; give --transmitter"),
        (lambda r, t: ["--buildings", str(r / "png/buildings_complete/0.png"), "--tx", "1,1", "--steps", "0"],
         "--steps: 0; expected an integer >= 1"),
        (lambda r, t: ["--buildings", str(r / "png/buildings_complete/0.png"), "--tx", "10,6"],
         "--tx 10,6: the transmitter at (x=10, y=6) is on a building pixel of "),
        (lambda r, t: ["--buildings", str(r / "png/buildings_complete/0.png"), "--transmitter",
                       str(write_png(t / "roof.png", antenna(10, 6)))],
         "roof.png: the transmitter at (x=10, y=6) is on a building pixel of "),
        (lambda r, t: ["--buildings", str(r / "png/buildings_complete"), "--transmitter",
                       str(write_png(t / "antennas" / "0_0.png", antenna(10, 6)).parent)],
         "0_0.png: the transmitter at (x=10, y=6) is on a building pixel of "),
    ],
)
def test_bad_inputs_are_one_error_line(inputs, tmp_path, capsys, make_args, message):
    root, _ = inputs
    assert generate(root, *make_args(root, tmp_path), "--out", str(tmp_path / "out.png")) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("error:") == 1 and "Traceback" not in error
    assert not (tmp_path / "out.png").exists()


def test_without_steps_the_pipeline_s_saved_steps_are_used(inputs, tmp_path):
    root, _ = inputs
    args = ["generate", "--pipeline", str(root / "pipeline"), "--buildings", str(root / "png/buildings_complete/0.png"),
            "--tx", "2,2", "--device", "cpu", "--out"]
    for steps in ("default", "2", "3"):
        options = [] if steps == "default" else ["--steps", steps]
        assert main([*args, str(tmp_path / f"{steps}.png"), *options]) == 0
    maps = {steps: np.asarray(Image.open(tmp_path / f"{steps}.png")) for steps in ("default", "2", "3")}
    np.testing.assert_array_equal(maps["default"], maps["2"])
    assert (maps["default"] != maps["3"]).any()


def test_an_existing_out_is_replaced_only_with_overwrite(inputs, tmp_path, capsys):
    root, _ = inputs
    out = write_png(tmp_path / "mine.png", np.full((SIZE, SIZE), 9))
    args = ["--buildings", str(root / "png/buildings_complete/0.png"), "--tx", "2,2", "--out", str(out)]
    assert generate(root, *args) == 2
    assert "mine.png exists; give --overwrite" in capsys.readouterr().err
    assert (np.asarray(Image.open(out)) == 9).all()
    assert generate(root, *args, "--overwrite") == 0
    assert not (np.asarray(Image.open(out)) == 9).all()


def test_a_folder_that_is_not_a_pipeline_is_one_error_line(tmp_path, capsys):
    assert main(["generate", "--pipeline", str(tmp_path), "--buildings", "b.png", "--tx", "1,1",
                 "--out", str(tmp_path / "o.png")]) == 2
    assert "no model_index.json" in capsys.readouterr().err


def test_a_radiounet_pipeline_generates_its_one_pass_map_and_refuses_steps(inputs, tmp_path, capsys):
    root, _ = inputs
    pipe = tiny_radiounet_pipeline(SIZE)
    pipe.save_pretrained(tmp_path / "radiounet")
    args = ["generate", "--pipeline", str(tmp_path / "radiounet"), "--buildings",
            str(root / "png/buildings_complete/0.png"), "--tx", "25,3", "--device", "cpu", "--out"]
    assert main([*args, str(tmp_path / "map.png")]) == 0
    buildings = torch.from_numpy(city(0) / 255.0).float()
    expected = pipe(buildings, (25, 3), output_type="pt").images[0, 0]
    written, free = read_back(tmp_path / "map.png"), buildings == 0
    torch.testing.assert_close(written[free], expected[free], rtol=0, atol=0.5 / 255 + 1e-6)
    assert written[free].std() > 0

    capsys.readouterr()
    assert main([*args, str(tmp_path / "other.png"), "--steps", "2"]) == 2
    error = capsys.readouterr().err
    assert "--steps: " in error and "maps in one pass without a sampler" in error and error.count("\n") == 1
