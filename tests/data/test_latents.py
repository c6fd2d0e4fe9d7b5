import json

import datasets
import numpy as np
import pytest
import torch
from tests.helpers.map_fixtures import radio_map_items, write_tiny_run

from radiodiff.cli import main
from radiodiff.config import load_vae_config
from radiodiff.data import build_dataset
from radiodiff.evaluation import latent_statistics, load_vae, write_latent_scale
from radiodiff.latents import encode_latents
from radiodiff.models.vae import normalize_latents


def test_latents_round_trip_equals_encoding_the_same_maps(tiny_vae, tmp_path):
    items = radio_map_items(5, with_conditions=True)
    encode_latents(tiny_vae, items, tmp_path / "latents", batch_size=2, device="cpu")

    saved = datasets.load_from_disk(str(tmp_path / "latents"))
    assert saved.column_names == ["name", "latent_mean", "latent_std", "buildings", "transmitter"]
    latents = saved.with_format("numpy")[:]
    assert list(latents["name"]) == [item["name"] for item in items]
    gain_maps = torch.stack([item["gain_map"] for item in items])
    with torch.no_grad():
        posterior = tiny_vae.eval().encode(gain_maps).latent_dist
    np.testing.assert_allclose(latents["latent_mean"], posterior.mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(latents["latent_std"], posterior.std.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(latents["buildings"], torch.stack([i["buildings"] for i in items]).numpy())
    np.testing.assert_array_equal(latents["transmitter"], torch.stack([i["transmitter"] for i in items]).numpy())


def test_latents_folder_explains_itself(tiny_vae, tmp_path):
    tiny_vae.register_to_config(scaling_factor=0.71)
    encode_latents(tiny_vae, radio_map_items(2, with_conditions=True), tmp_path, batch_size=2, device="cpu",
                   source={"model": "outputs/vae", "split": "train"})
    info = json.loads((tmp_path / "latents.json").read_text())
    assert info["scaling_factor"] == pytest.approx(0.71)
    assert info["latent_shape"] == [3, 16, 16]
    assert info["source"] == {"model": "outputs/vae", "split": "train"}
    readme = (tmp_path / "README.md").read_text()
    for column in ("name", "latent_mean", "latent_std", "buildings", "transmitter", "load_from_disk", "0.71"):
        assert column in readme


def test_sampled_latents_are_reproducible_and_drawn_from_the_stored_posterior(tiny_vae, tmp_path):
    items = radio_map_items(3)
    runs = [encode_latents(tiny_vae, items, tmp_path / str(i), batch_size=3, device="cpu", sample=True, seed=7)
            .with_format("numpy") for i in range(2)]
    assert "buildings" not in runs[0].column_names, "maps without conditions give no condition columns"
    first, second = runs[0][:], runs[1][:]
    np.testing.assert_array_equal(first["latent_sample"], second["latent_sample"])
    noise = (first["latent_sample"] - first["latent_mean"]) / first["latent_std"]
    assert abs(noise.mean()) < 0.1 and noise.std() == pytest.approx(1.0, rel=0.1)


def test_encode_latents_command_saves_every_training_map_with_its_conditions(tiny_vae, tmp_path):
    config, model = write_tiny_run(tmp_path, tiny_vae)
    out = tmp_path / "latents"
    assert main(["encode-latents", "--model", model, "--config", config, "--out", str(out), "--device", "cpu"]) == 0
    train_maps = build_dataset(load_vae_config(config).data, "train", with_conditions=True)
    latents = datasets.load_from_disk(str(out))
    assert latents["name"][:] == [train_maps[i]["name"] for i in range(len(train_maps))]
    first = latents.with_format("numpy")[0]
    np.testing.assert_array_equal(first["buildings"], train_maps[0]["buildings"].numpy())
    assert json.loads((out / "latents.json").read_text())["source"]["split"] == "train"


def test_latents_normalised_with_the_written_scale_have_zero_mean_and_unit_std(tiny_vae, tmp_path):
    """One convention end to end: the measured shift and scale, stored in the VAE's config, make the latents
    that encode-latents saves standard under ``normalize_latents``, as latents.json and its README say."""
    items = radio_map_items(6, with_conditions=True)
    tiny_vae.save_pretrained(tmp_path / "vae")
    stats = latent_statistics(tiny_vae, items, batch_size=2, device="cpu", seed=3)
    write_latent_scale(tmp_path / "vae", stats.scaling_factor, stats.shift_factor)
    vae = load_vae(tmp_path / "vae")

    saved = encode_latents(vae, items, tmp_path / "latents", batch_size=2, device="cpu", sample=True, seed=3)

    info = json.loads((tmp_path / "latents" / "latents.json").read_text())
    assert (info["shift_factor"], info["scaling_factor"]) == (vae.config.shift_factor, vae.config.scaling_factor)
    assert "latents_mean" not in info
    latents = saved.with_format("torch")[:]["latent_sample"]
    normalised = normalize_latents(latents, vae.config)
    assert normalised.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert normalised.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    readme = (tmp_path / "latents" / "README.md").read_text()
    assert "(z - shift_factor) * scaling_factor" in readme and f"shift_factor = {vae.config.shift_factor}" in readme


@pytest.fixture
def seer_run(tiny_vae, tmp_path):
    """A saved VAE and a config reading a small RadioMapSeer-layout folder (14 cities x 2 transmitters)."""
    from radiodiff.data import synthesize

    root = synthesize(tmp_path / "seer", maps=14, tx_per_map=2, size=32, seed=0)
    config, model = write_tiny_run(tmp_path, tiny_vae)
    (tmp_path / "config.yaml").write_text(f"data:\n  source: radiomapseer\n  root: {root}\n  resolution: 32\n")
    train_maps = build_dataset(load_vae_config(config).data, "train")
    # the second map of the split: the first is read before encoding starts, this one inside the encoding
    map_id = train_maps[2]["name"].split("_")[0]
    broken = root / "png" / "buildings_complete" / f"{map_id}.png"
    broken.write_bytes(broken.read_bytes()[:60])
    return config, model, broken, len(train_maps)


def test_encode_latents_names_a_corrupt_buildings_png_in_one_error_line(seer_run, tmp_path, capsys):
    config, model, broken, _ = seer_run
    out = tmp_path / "latents"
    assert main(["encode-latents", "--model", model, "--config", config, "--out", str(out), "--device", "cpu",
                 "--batch-size", "2"]) == 2
    stderr = capsys.readouterr().err
    (error,) = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert error.startswith(f"radiodiff encode-latents: error: {broken}: unreadable image")
    assert "Traceback" not in stderr and "DatasetGenerationError" not in stderr


def test_on_corrupt_skip_leaves_out_maps_whose_condition_images_are_unreadable(seer_run, tmp_path):
    config, model, broken, train_count = seer_run
    out = tmp_path / "latents"
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\)"):
        assert main(["encode-latents", "--model", model, "--config", config, "--out", str(out), "--device", "cpu",
                     "data.on_corrupt=skip"]) == 0
    names = datasets.load_from_disk(str(out))["name"][:]
    assert len(names) == train_count - 2 and not [name for name in names if name.startswith(f"{broken.stem}_")]
