"""Dihedral augmentation: the 8 symmetries of the square, applied to a map, its buildings and its transmitter alike."""

import itertools

import pytest
import torch

from radiodiff.config import ConfigError, DataConfig, SyntheticConfig, load_vae_config
from radiodiff.data import DihedralAugmented, build_dataset, dihedral_transform, unaugmented
from radiodiff.evaluation.commands import split_dataset

SIZE = 32
MAPS = 8
TX = 3


@pytest.fixture(scope="module")
def data_config(tmp_path_factory) -> DataConfig:
    cache = tmp_path_factory.mktemp("augment-cache")
    synthetic = SyntheticConfig(maps=MAPS, tx_per_map=TX, size=SIZE, seed=3, cache_dir=str(cache))
    return DataConfig(source="synthetic", synthetic=synthetic, augment="dihedral")


def _moved_pixel(row: int, col: int, symmetry: int, side: int) -> tuple[int, int]:
    """Where pixel (row, col) lands: a left-right mirror for symmetry >= 4, then quarter turns counterclockwise."""
    if symmetry >= 4:
        col = side - 1 - col
    for _ in range(symmetry % 4):
        row, col = side - 1 - col, row
    return row, col


def test_the_eight_symmetries_are_distinct_and_closed_under_composition():
    asymmetric = torch.arange(5 * 5, dtype=torch.float32).reshape(1, 5, 5)
    images = [dihedral_transform(asymmetric, symmetry) for symmetry in range(8)]
    assert torch.equal(images[0], asymmetric)
    assert len({tuple(image.flatten().tolist()) for image in images}) == 8
    for first, second in itertools.product(range(8), repeat=2):
        composed = dihedral_transform(dihedral_transform(asymmetric, first), second)
        assert any(torch.equal(composed, image) for image in images), (first, second)
    # every element has an inverse among the eight
    for symmetry in range(8):
        assert any(torch.equal(dihedral_transform(images[symmetry], other), asymmetric) for other in range(8))


def test_the_symmetry_moves_pixels_as_the_mirror_and_quarter_turns_say():
    image = torch.zeros(1, 6, 6)
    image[0, 1, 4] = 1.0
    for symmetry in range(8):
        moved = dihedral_transform(image, symmetry)
        assert torch.nonzero(moved[0]).tolist() == [list(_moved_pixel(1, 4, symmetry, 6))]


def test_the_training_split_is_presented_eight_times_starting_with_the_maps_as_they_are(data_config):
    augmented = build_dataset(data_config, "train", with_conditions=True)
    plain = unaugmented(augmented)
    assert isinstance(augmented, DihedralAugmented) and len(augmented) == 8 * len(plain)
    for index in (0, len(plain) - 1):
        for key in ("gain_map", "buildings", "transmitter"):
            assert torch.equal(augmented[index][key], plain[index][key])


def test_the_transmitter_stays_the_one_lit_pixel_and_buildings_turn_with_the_map(data_config):
    augmented = build_dataset(data_config, "train", with_conditions=True)
    plain = unaugmented(augmented)
    for map_index in (0, len(plain) // 2):
        original = plain[map_index]
        (row, col), = torch.nonzero(original["transmitter"][0]).tolist()
        for symmetry in range(8):
            item = augmented[symmetry * len(plain) + map_index]
            assert item["name"] == original["name"]
            assert torch.nonzero(item["transmitter"][0]).tolist() == [list(_moved_pixel(row, col, symmetry, SIZE))]
            # the strongest gain is still at the transmitter, and every building pixel is still at the floor
            new_row, new_col = _moved_pixel(row, col, symmetry, SIZE)
            assert item["gain_map"][0, new_row, new_col] == item["gain_map"].max()
            assert item["buildings"].sum() == original["buildings"].sum() > 0
            assert (item["gain_map"][item["buildings"] == 1] == -1).all()
            assert torch.equal(item["buildings"], dihedral_transform(original["buildings"], symmetry))
        assert len({tuple(augmented[s * len(plain) + map_index]["buildings"].flatten().tolist())
                    for s in range(8)}) == 8


def test_validation_and_test_splits_are_never_augmented(data_config):
    plain_config = DataConfig(source="synthetic", synthetic=data_config.synthetic)
    for split in ("val", "test"):
        augmented, plain = build_dataset(data_config, split), build_dataset(plain_config, split)
        assert not isinstance(augmented, DihedralAugmented) and len(augmented) == len(plain)
        assert all(torch.equal(augmented[i]["gain_map"], plain[i]["gain_map"]) for i in range(len(plain)))


def test_the_evaluation_commands_read_training_maps_once_as_they_are(data_config):
    synthetic = data_config.synthetic
    overrides = [f"data.synthetic.{key}={value}" for key, value in vars(synthetic).items()]
    dataset, _ = split_dataset(None, [*overrides, "data.augment=dihedral"], "train", with_conditions=True)
    plain = build_dataset(DataConfig(source="synthetic", synthetic=synthetic), "train")
    assert len(dataset) == len(plain) == len(build_dataset(data_config, "train")) // 8
    assert torch.equal(dataset[len(plain) - 1]["gain_map"], plain[len(plain) - 1]["gain_map"])


def test_a_non_square_map_cannot_be_augmented():
    class Wide(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return {"gain_map": torch.zeros(1, 4, 6), "name": "0_0"}

    with pytest.raises(ValueError, match="dihedral needs square maps, but '0_0' is 4x6"):
        DihedralAugmented(Wide())[3]


def test_an_unknown_augmentation_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"data.augment: expected one of 'none', 'dihedral', got 'rotate'"):
        load_vae_config(None, ["data.augment=rotate"])
    assert load_vae_config(None, []).data.augment == "none"
