"""Loading gain maps: RadioMapSeer layout, split protocols, normalisation, bad input, the synthetic cache, datasets."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from radiodiff.config import DataConfig, SyntheticConfig
from radiodiff.data import (
    HuggingFaceMapDataset,
    RadioMapSeerDataset,
    UnreadableImageError,
    build_dataset,
    prepare_data,
    synthesize,
)
from radiodiff.data import synthetic as synthetic_module
from radiodiff.data.splits import leak_free_map_ids, published_map_ids, split_map_ids

SIZE = 32


@pytest.fixture(scope="module")
def seer_root(tmp_path_factory) -> Path:
    """A synthetic set in RadioMapSeer's layout: 8 maps of 3 transmitters, 32 px."""
    return synthesize(tmp_path_factory.mktemp("seer") / "root", maps=8, tx_per_map=3, size=SIZE, seed=1)


@pytest.fixture
def seer_copy(seer_root, tmp_path) -> Path:
    """A copy of ``seer_root`` that a test may damage."""
    return Path(shutil.copytree(seer_root, tmp_path / "root"))


def _loader(root, split="train", **kwargs) -> RadioMapSeerDataset:
    return RadioMapSeerDataset(root, split, map_size=SIZE, **kwargs)


# the layout written by ``synth``, read back


def test_the_loader_reads_every_transmitter_of_the_split_maps(seer_root):
    dataset = _loader(seer_root, with_conditions=True)
    train_maps = leak_free_map_ids(range(8), "train")
    assert [item for item in dataset.samples] == [(m, t) for m in train_maps for t in range(3)]
    item = dataset[0]
    assert item["name"] == f"{train_maps[0]}_0"
    for key in ("gain_map", "buildings", "transmitter"):
        assert item[key].shape == (1, SIZE, SIZE) and item[key].dtype == torch.float32


def test_conditions_are_the_building_mask_and_the_transmitter_pixel(seer_root):
    item = _loader(seer_root, with_conditions=True)[4]
    map_id, tx = (int(part) for part in item["name"].split("_"))
    buildings = np.asarray(Image.open(seer_root / "png" / "buildings_complete" / f"{map_id}.png"))
    np.testing.assert_array_equal(item["buildings"][0].numpy(), buildings == 255)
    x, y = json.loads((seer_root / "antenna" / f"{map_id}.json").read_text())[tx]
    assert torch.nonzero(item["transmitter"][0]).tolist() == [[y, x]]
    # the transmitter is where its own gain map peaks, and buildings are at the bottom of the scale
    assert item["gain_map"][0, y, x] == item["gain_map"].max() == 1.0
    assert (item["gain_map"][item["buildings"] == 1] == -1).all()


def test_gain_maps_are_scaled_by_255_then_centred_on_zero(seer_root):
    dataset = _loader(seer_root)
    item = dataset[1]
    stored = np.asarray(Image.open(seer_root / "gain" / "DPM" / f"{item['name']}.png")).astype(np.float32)
    np.testing.assert_allclose(item["gain_map"][0].numpy(), (stored / 255 - 0.5) / 0.5, atol=1e-6)
    assert item["gain_map"].min() >= -1 and item["gain_map"].max() <= 1


def test_the_default_collate_batches_items(seer_root):
    batch = next(iter(DataLoader(_loader(seer_root, with_conditions=True), batch_size=4)))
    assert batch["gain_map"].shape == (4, 1, SIZE, SIZE)
    assert batch["transmitter"].shape == (4, 1, SIZE, SIZE)
    assert len(batch["name"]) == 4 and all(isinstance(name, str) for name in batch["name"])


# split protocols


def test_radiounet_protocol_is_501_100_99_disjoint_maps_of_ids_1_to_700():
    splits = {split: published_map_ids("radiounet", split) for split in ("train", "val", "test")}
    assert [len(ids) for ids in splits.values()] == [501, 100, 99]
    everything = set().union(*map(set, splits.values()))
    assert len(everything) == 700 and everything <= set(range(1, 701))


def test_radiodiff_protocol_is_the_original_slices_sharing_map_289():
    train, val, test = (set(published_map_ids("radiodiff", split)) for split in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (601, 51, 100)
    assert train & test == train & val == {289}
    assert val <= test
    # the original's order: np.random.seed(42); shuffle(arange(700)); + 1
    assert published_map_ids("radiodiff", "train")[:3] == [159, 501, 397]


def test_the_leak_free_protocol_cuts_radiomapseer_600_50_50_without_overlap():
    splits = [set(split_map_ids("leakfree", split, range(1, 701))) for split in ("train", "val", "test")]
    assert [len(ids) for ids in splits] == [600, 50, 50]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])


@pytest.mark.parametrize("maps", [3, 5, 8, 48])
def test_leak_free_splits_of_small_sets_are_disjoint_complete_and_never_empty(maps):
    splits = [leak_free_map_ids(range(maps), split) for split in ("train", "val", "test")]
    assert all(splits)
    assert sorted(sum(splits, [])) == list(range(maps))


def test_a_published_protocol_names_the_maps_it_cannot_find(seer_root):
    with pytest.raises(FileNotFoundError, match=r"radiodiff protocol's train split needs maps .*_0\.png"):
        _loader(seer_root, protocol="radiodiff")


# bad input


def test_a_missing_root_names_the_folder_and_what_belongs_in_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'nowhere'}: RadioMapSeer root not found.*gain/DPM"):
        _loader(tmp_path / "nowhere")


def test_a_missing_simulation_folder_is_named(seer_root):
    with pytest.raises(FileNotFoundError, match=rf"{seer_root / 'gain' / 'IRT2'}: folder not found.*IRT2 gain maps"):
        _loader(seer_root, simulation="IRT2")


def test_missing_condition_folders_are_named_only_when_conditions_are_asked_for(seer_copy):
    shutil.rmtree(seer_copy / "png" / "antennas")
    assert len(_loader(seer_copy)) > 0
    with pytest.raises(FileNotFoundError, match=r"png/antennas: folder not found"):
        _loader(seer_copy, with_conditions=True)


def _corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def test_a_corrupt_image_fails_naming_the_file(seer_copy):
    dataset = _loader(seer_copy)
    broken = seer_copy / "gain" / "DPM" / f"{dataset[2]['name']}.png"
    _corrupt(broken)
    with pytest.raises(UnreadableImageError, match=rf"{broken}: unreadable image"):
        dataset[2]


def test_corrupt_images_can_be_skipped_with_a_count(seer_copy):
    complete = _loader(seer_copy)
    for index in (0, 4):
        _corrupt(seer_copy / "gain" / "DPM" / f"{complete[index]['name']}.png")
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\)"):
        skipping = _loader(seer_copy, on_corrupt="skip")
    assert len(skipping) == len(complete) - 2
    assert [skipping[i]["name"] for i in range(len(skipping))] == [
        complete[i]["name"] for i in range(len(complete)) if i not in (0, 4)
    ]


def test_an_rgb_map_is_converted_with_a_warning(seer_copy):
    dataset = _loader(seer_copy)
    path = seer_copy / "gain" / "DPM" / f"{dataset[0]['name']}.png"
    gray = Image.open(path)
    Image.merge("RGB", [gray, gray, gray]).save(path)
    with pytest.warns(UserWarning, match=r"RGB image converted to grayscale"):
        item = dataset[0]
    expected = (np.asarray(gray, dtype=np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(item["gain_map"][0].numpy(), expected, atol=1e-6)


def test_a_map_of_the_wrong_size_is_an_error_unless_resizing_is_allowed(seer_root):
    with pytest.raises(ValueError, match=r"_0\.png: a 32x32 map, expected 48x48; set data.allow_resize"):
        _loader(seer_root, resolution=48)[0]
    item = _loader(seer_root, resolution=48, allow_resize=True, with_conditions=True)[0]
    assert item["gain_map"].shape == item["buildings"].shape == (1, 48, 48)
    assert item["gain_map"].min() >= -1 and item["gain_map"].max() <= 1
    assert set(item["buildings"].unique().tolist()) <= {0.0, 1.0}
    # the transmitter stays a single pixel, at the matching place
    assert item["transmitter"].sum() == 1
    row, col = torch.nonzero(item["transmitter"][0])[0].tolist()
    assert item["gain_map"][0, row, col] > 0.8


# the configured sources


def _synthetic_config(tmp_path, **overrides) -> DataConfig:
    synthetic = SyntheticConfig(maps=6, tx_per_map=2, size=SIZE, seed=4, cache_dir=str(tmp_path / "cache"))
    return DataConfig(source="synthetic", synthetic=synthetic, **overrides)


def test_the_synthetic_source_generates_once_into_a_keyed_cache_and_reuses_it(tmp_path, monkeypatch):
    config = _synthetic_config(tmp_path)
    calls = []
    real_synthesize = synthetic_module.synthesize
    monkeypatch.setattr(synthetic_module, "synthesize", lambda *a, **k: calls.append(1) or real_synthesize(*a, **k))
    prepare_data(config)
    splits = {split: build_dataset(config, split, with_conditions=True) for split in ("train", "val", "test")}
    assert len(calls) == 1
    assert sum(len(dataset) for dataset in splits.values()) == 6 * 2
    train_maps = {item["name"].split("_")[0] for item in splits["train"]}
    test_maps = {item["name"].split("_")[0] for item in splits["test"]}
    assert train_maps and test_maps and not train_maps & test_maps
    # one finished folder named by the generator's parameters and version, no staging folder left behind
    (folder,) = (tmp_path / "cache").iterdir()
    assert folder.name == f"v{synthetic_module.GENERATOR_VERSION}-size32-maps6-tx2-seed4"
    config.synthetic.seed = 5
    build_dataset(config, "train")
    assert len(calls) == 2 and len(list((tmp_path / "cache").iterdir())) == 2


def test_an_interrupted_generation_leaves_no_cache(tmp_path, monkeypatch):
    config = _synthetic_config(tmp_path)

    def interrupted(out, **kwargs):
        (Path(out) / "gain").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic_module, "synthesize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(config)
    assert list((tmp_path / "cache").iterdir()) == []


def test_radiomapseer_and_datasets_sources_need_a_root():
    for source in ("radiomapseer", "datasets"):
        with pytest.raises(ValueError, match=rf"data.root: required for data.source '{source}'"):
            build_dataset(DataConfig(source=source), "train")


def test_an_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"split 'training': expected one of train, val, test"):
        build_dataset(_synthetic_config(tmp_path), "training")


# Hugging Face datasets


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory) -> Path:
    """The synthetic set saved as a ``datasets`` dataset: image, buildings, transmitter, name, map_id columns."""
    out = tmp_path_factory.mktemp("hf") / "saved"
    return synthesize(out, maps=7, tx_per_map=2, size=SIZE, seed=2, output_format="datasets")


def test_a_saved_dataset_is_split_leak_free_by_map_and_normalised(saved_dataset, seer_root):
    config = DataConfig(source="datasets", root=str(saved_dataset))
    splits = {split: build_dataset(config, split, with_conditions=True) for split in ("train", "val", "test")}
    maps = {split: {item["name"].split("_")[0] for item in dataset} for split, dataset in splits.items()}
    assert maps["train"] == {str(m) for m in leak_free_map_ids(range(7), "train")}
    assert not (maps["train"] & maps["val"] or maps["train"] & maps["test"] or maps["val"] & maps["test"])
    item = splits["test"][0]
    # the same map as the RadioMapSeer-layout output of the same generator call
    same_map = synthesize(seer_root.parent / "again", maps=7, tx_per_map=2, size=SIZE, seed=2)
    stored = np.asarray(Image.open(same_map / "gain" / "DPM" / f"{item['name']}.png")).astype(np.float32)
    np.testing.assert_allclose(item["gain_map"][0].numpy(), stored / 127.5 - 1, atol=1e-6)
    assert item["transmitter"].sum() == 1
    batch = next(iter(DataLoader(splits["train"], batch_size=3)))
    assert batch["gain_map"].shape == (3, 1, SIZE, SIZE)


def test_a_dataset_without_condition_columns_says_so(saved_dataset, tmp_path):
    import datasets

    plain = datasets.load_from_disk(str(saved_dataset)).remove_columns(["buildings", "transmitter"])
    plain = plain.rename_column("image", "gain")
    plain.save_to_disk(str(tmp_path / "plain"))
    config = DataConfig(source="datasets", root=str(tmp_path / "plain"), image_column="gain")
    assert len(build_dataset(config, "train")) > 0
    with pytest.raises(ValueError, match=r"no column 'buildings' for the conditions"):
        build_dataset(config, "train", with_conditions=True)
    with pytest.raises(ValueError, match=r"no column 'image' for the gain maps.*has gain, name, map_id"):
        build_dataset(DataConfig(source="datasets", root=str(tmp_path / "plain")), "train")


def test_a_folder_of_images_is_a_dataset_split_by_row(seer_root, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    splits = [HuggingFaceMapDataset(str(seer_root / "gain" / "DPM"), split) for split in ("train", "val", "test")]
    expected = [len(leak_free_map_ids(range(24), split)) for split in ("train", "val", "test")]
    assert [len(dataset) for dataset in splits] == expected
    assert splits[0][0]["gain_map"].shape == (1, SIZE, SIZE)


def test_a_missing_local_dataset_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'absent'}: not found; expected a dataset saved"):
        build_dataset(DataConfig(source="datasets", root=str(tmp_path / "absent")), "train")


def test_corrupt_dataset_rows_can_be_skipped_or_fail_naming_the_row(saved_dataset, tmp_path):
    import datasets

    rows = datasets.load_from_disk(str(saved_dataset)).cast_column("image", datasets.Image(decode=False))
    # the first row of the train split: transmitter 0 of its lowest map (rows are map-major, 2 per map)
    first_train_row = 2 * min(leak_free_map_ids(range(7), "train"))

    def break_first_train_row(row, index):
        return {"image": {"bytes": b"not a png" if index == first_train_row else row["image"]["bytes"], "path": None}}

    rows.map(break_first_train_row, with_indices=True).save_to_disk(str(tmp_path / "broken"))
    intact = build_dataset(DataConfig(source="datasets", root=str(saved_dataset)), "train")
    with pytest.raises(UnreadableImageError, match=r"broken row 0 column 'image'.*unreadable image"):
        # here already when the dataset is built: its first image sets the size the others must have
        build_dataset(DataConfig(source="datasets", root=str(tmp_path / "broken")), "train")[0]
    skip_config = DataConfig(source="datasets", root=str(tmp_path / "broken"), on_corrupt="skip")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\)"):
        skipping = build_dataset(skip_config, "train")
    assert len(skipping) == len(intact) - 1
    assert skipping[0]["name"] == intact[1]["name"]
