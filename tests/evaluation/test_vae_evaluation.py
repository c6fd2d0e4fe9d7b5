import csv
import json
import math

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from tests.helpers.map_fixtures import radio_map_items, write_tiny_run
from tests.helpers.tiny_runs import REPO

from radiodiff.cli import main
from radiodiff.config import load_vae_config
from radiodiff.data import build_dataset
from radiodiff.evaluation import (
    VAEEvaluationResult,
    evaluate_vae,
    gallery_indices,
    latent_statistics,
    reconstruction_metrics,
    save_vae_gallery,
    summarize,
    to_unit_range,
    write_latent_scale,
    write_vae_metrics,
)


def constant_maps(value: float, size: int = 16) -> torch.Tensor:
    return torch.full((1, 1, size, size), value)


def strict_json(path):
    def refuse(constant):
        raise AssertionError(f"metrics.json holds the non-JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


# --- metrics -------------------------------------------------------------------------------------------------


def test_metrics_match_hand_computation_on_constant_maps():
    metrics = reconstruction_metrics(constant_maps(0.6), constant_maps(0.5))
    # MSE = 0.1^2; the target's power is 0.5^2
    assert metrics["nmse"].item() == pytest.approx(0.01 / 0.25, rel=1e-5)
    assert metrics["rmse"].item() == pytest.approx(0.1, rel=1e-5)
    # with the data range fixed to 1: PSNR = 10 log10(1 / MSE), whatever the maps' own range
    assert metrics["psnr"].item() == pytest.approx(20.0, rel=1e-5)
    # flat maps have no variance, so SSIM is its luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    c1 = (0.01 * 1.0) ** 2
    assert metrics["ssim"].item() == pytest.approx((2 * 0.6 * 0.5 + c1) / (0.36 + 0.25 + c1), rel=1e-5)


def test_metrics_are_per_map():
    prediction = torch.cat([constant_maps(0.6), constant_maps(0.5)])
    target = torch.cat([constant_maps(0.5), constant_maps(0.25)])
    metrics = reconstruction_metrics(prediction, target)
    assert metrics["rmse"].tolist() == pytest.approx([0.1, 0.25], rel=1e-5)
    assert metrics["nmse"].tolist() == pytest.approx([0.04, 1.0], rel=1e-5)


def test_perfect_reconstruction_gives_zero_nmse_unit_ssim_and_infinite_psnr():
    gain_map = to_unit_range(radio_map_items(1)[0]["gain_map"][None])
    metrics = reconstruction_metrics(gain_map, gain_map.clone())
    assert metrics["nmse"].item() == 0.0
    assert metrics["rmse"].item() == 0.0
    assert metrics["ssim"].item() == pytest.approx(1.0, abs=1e-6)
    assert math.isinf(metrics["psnr"].item())


def test_maps_are_measured_on_the_unit_scale_after_clamping():
    assert to_unit_range(torch.tensor([-1.0, 0.0, 1.0, 1.7, -3.0])).tolist() == [0.0, 0.5, 1.0, 1.0, 0.0]


def test_summary_is_mean_sample_std_and_student_t_interval():
    summary = summarize(np.array([1.0, 2.0, 3.0, 4.0]))
    std = math.sqrt(5 / 3)
    half_width = 3.182446305284263 * std / 2  # t(0.975, 3 degrees of freedom) * std / sqrt(4)
    assert summary["mean"] == pytest.approx(2.5)
    assert summary["std"] == pytest.approx(std)
    assert summary["ci95"] == pytest.approx([2.5 - half_width, 2.5 + half_width])


def test_summary_leaves_out_infinite_values_and_is_empty_without_finite_ones():
    assert summarize(np.array([30.0, math.inf, 40.0]))["mean"] == pytest.approx(35.0)
    assert summarize(np.array([math.inf, math.inf])) == {"mean": None, "std": None, "ci95": None}
    assert summarize(np.array([7.0])) == {"mean": 7.0, "std": 0.0, "ci95": None}


# --- the evaluation pass ---------------------------------------------------------------------------------------


def test_evaluation_measures_every_map_in_order_against_the_deterministic_reconstruction(tiny_vae):
    items = radio_map_items(5)
    tiny_vae.train()
    result = evaluate_vae(tiny_vae, items, batch_size=2, device="cpu", split="test", variant="ema")
    assert result.names == [item["name"] for item in items]
    assert tiny_vae.training, "evaluation must leave the model in the mode it found it"

    gain_maps = torch.stack([item["gain_map"] for item in items])
    with torch.no_grad():
        tiny_vae.eval()
        reconstruction = tiny_vae(gain_maps).sample
        posterior = tiny_vae.encode(gain_maps).latent_dist
    expected = reconstruction_metrics(to_unit_range(reconstruction), to_unit_range(gain_maps))
    for name, values in expected.items():
        np.testing.assert_allclose(result.per_image[name], values.numpy(), rtol=1e-4, atol=1e-6)
    assert result.kl_per_element == pytest.approx((posterior.kl() / (3 * 16 * 16)).mean().item(), rel=1e-4)
    assert result.latent_shape == (3, 16, 16)
    assert result.compression_factor == pytest.approx(32 * 32 / (3 * 16 * 16))


def test_evaluation_is_deterministic_by_default_and_samples_reproducibly_on_request(tiny_vae):
    items = radio_map_items(3)
    first = evaluate_vae(tiny_vae, items, batch_size=3, device="cpu")
    second = evaluate_vae(tiny_vae, items, batch_size=1, device="cpu")
    np.testing.assert_allclose(first.per_image["nmse"], second.per_image["nmse"], rtol=1e-5)
    sampled = [evaluate_vae(tiny_vae, items, batch_size=3, device="cpu", sample_posterior=True, seed=1)
               for _ in range(2)]
    np.testing.assert_array_equal(sampled[0].per_image["nmse"], sampled[1].per_image["nmse"])
    assert not np.allclose(sampled[0].per_image["nmse"], first.per_image["nmse"])


def test_metrics_json_has_the_model_card_schema_and_the_csv_one_row_per_map(tiny_vae, tmp_path):
    items = radio_map_items(4)
    result = evaluate_vae(tiny_vae, items, batch_size=4, device="cpu", split="val", variant="ema")
    path = write_vae_metrics(result, tmp_path)
    assert path == tmp_path / "metrics.json"
    metrics = strict_json(path)
    assert set(metrics) == {"split", "variant", "num_maps", "metrics", "non_finite", "latent"}
    assert (metrics["split"], metrics["variant"], metrics["num_maps"]) == ("val", "ema", 4)
    assert set(metrics["metrics"]) == {"nmse", "rmse", "ssim", "psnr"}
    for summary in metrics["metrics"].values():
        assert set(summary) == {"mean", "std", "ci95"}
        low, high = summary["ci95"]
        assert low <= summary["mean"] <= high
    assert metrics["metrics"]["nmse"]["mean"] == pytest.approx(result.per_image["nmse"].mean())
    assert metrics["latent"] == {"shape": [3, 16, 16], "compression_factor": 1.3333,
                                 "kl_per_element": pytest.approx(result.kl_per_element)}
    with (tmp_path / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == [item["name"] for item in items]
    assert [float(row["psnr"]) for row in rows] == pytest.approx(result.per_image["psnr"].tolist())


def test_a_training_subset_is_reported_beside_validation_with_the_gap(tiny_vae, tmp_path):
    validation = evaluate_vae(tiny_vae, radio_map_items(4), batch_size=4, device="cpu", split="val")
    train_subset = evaluate_vae(tiny_vae, radio_map_items(6)[4:], batch_size=2, device="cpu", split="train")
    metrics = strict_json(write_vae_metrics(validation, tmp_path, train_subset=train_subset))
    block = metrics["train_subset"]
    assert (block["split"], block["num_maps"]) == ("train", 2)
    assert block["metrics"]["psnr"]["mean"] == pytest.approx(train_subset.per_image["psnr"].mean())
    for name in ("nmse", "rmse", "ssim", "psnr"):
        expected = train_subset.per_image[name].mean() - validation.per_image[name].mean()
        assert block["gap"][name] == pytest.approx(expected) and expected != 0
    # the CSV stays the validation split's, one row per map
    with (tmp_path / "per_image.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_perfect_maps_keep_metrics_json_valid_with_null_psnr_and_a_count(tmp_path):
    result = VAEEvaluationResult(
        names=["0_0", "0_1"],
        per_image={"nmse": np.zeros(2), "rmse": np.zeros(2), "ssim": np.ones(2), "psnr": np.full(2, math.inf)},
        input_shape=(1, 32, 32),
        latent_shape=(3, 16, 16),
        kl_per_element=0.5,
    )
    metrics = strict_json(write_vae_metrics(result, tmp_path / "eval" / "test.json"))
    assert metrics["metrics"]["nmse"] == {"mean": 0.0, "std": 0.0, "ci95": [0.0, 0.0]}
    assert metrics["metrics"]["psnr"] == {"mean": None, "std": None, "ci95": None}
    assert metrics["non_finite"] == {"nmse": 0, "rmse": 0, "ssim": 0, "psnr": 2}
    with (tmp_path / "eval" / "per_image.csv").open() as handle:
        assert [float(row["psnr"]) for row in csv.DictReader(handle)] == [math.inf, math.inf]


def key_structure(value):
    """The nested keys of a JSON value, with lists and numbers reduced to their kind."""
    if isinstance(value, dict):
        return {key: key_structure(item) for key, item in value.items()}
    return "list" if isinstance(value, list) else type(value).__name__ if isinstance(value, str) else "number"


def test_the_docs_metrics_example_has_the_keys_the_code_writes(tmp_path):
    readme = (REPO / "docs" / "first_stage.md").read_text()
    example = json.loads(readme.split("```json\n", 1)[1].split("```", 1)[0])
    result = VAEEvaluationResult(
        names=["0_0", "0_1", "0_2"],
        per_image={"nmse": np.array([0.1, 0.2, 0.3]), "rmse": np.array([0.2, 0.1, 0.3]),
                   "ssim": np.array([0.8, 0.9, 0.7]), "psnr": np.array([20.0, 22.0, 21.0])},
        input_shape=(1, 32, 32),
        latent_shape=(3, 16, 16),
        kl_per_element=0.5,
        split="test",
        variant="ema",
    )
    written = strict_json(write_vae_metrics(result, tmp_path))
    assert key_structure(example) == key_structure(written)


def test_gallery_picks_best_median_and_worst_by_nmse(tiny_vae, tmp_path):
    nmse = np.array([0.5, 0.1, 0.3, 0.9, 0.2, math.nan])
    assert gallery_indices(nmse, 1) == {"best": [1], "median": [2], "worst": [3]}
    assert gallery_indices(nmse, 2) == {"best": [1, 4], "median": [4, 2], "worst": [3, 0]}

    items = radio_map_items(4)
    result = evaluate_vae(tiny_vae, items, batch_size=4, device="cpu")
    path = save_vae_gallery(tiny_vae, items, result, tmp_path / "gallery.png", count=1, device="cpu")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the latent scale ------------------------------------------------------------------------------------------


class AffineEncoder(torch.nn.Module):
    """Latent channel c = scale[c] * map + shift[c], with a negligible posterior std: a known distribution."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale).view(1, -1, 1, 1))
        self.register_buffer("shift", torch.tensor(shift).view(1, -1, 1, 1))

    @property
    def dtype(self):
        return self.scale.dtype

    def encode(self, gain_map):
        mean = self.scale * gain_map + self.shift
        logvar = torch.full_like(mean, -40.0)
        return type("EncoderOutput", (), {"latent_dist": DiagonalGaussianDistribution(torch.cat([mean, logvar], 1))})


def test_latent_scale_of_a_known_distribution_is_one_over_its_std():
    torch.manual_seed(0)
    maps = [{"gain_map": torch.randn(1, 32, 32), "name": f"0_{i}"} for i in range(16)]
    encoder = AffineEncoder(scale=[1.0, 2.0, 0.5], shift=[0.0, 1.0, -1.0])
    stats = latent_statistics(encoder, maps, batch_size=5, device="cpu")
    assert stats.num_maps == 16
    assert stats.mean == pytest.approx([0.0, 1.0, -1.0], abs=0.05)
    assert stats.std == pytest.approx([1.0, 2.0, 0.5], rel=0.03)
    # all channels pooled: variance = mean of the channel variances + variance of the channel means
    pooled_std = math.sqrt((1.0 + 4.0 + 0.25) / 3 + 2 / 3)
    assert stats.scaling_factor == pytest.approx(1 / pooled_std, rel=0.03)
    # and exactly the population std of the latents it saw
    latents = torch.cat([encoder.encode(m["gain_map"][None]).latent_dist.mean for m in maps])
    assert stats.scaling_factor == pytest.approx(1 / latents.std(unbiased=False).item(), rel=1e-6)
    assert stats.shift_factor == pytest.approx(latents.mean().item(), abs=1e-6)
    assert stats.std[1] == pytest.approx(latents[:, 1].std(unbiased=False).item(), rel=1e-6)


def test_latent_scale_is_written_into_the_vae_config_leaving_the_weights_alone(tiny_vae, tmp_path):
    tiny_vae.save_pretrained(tmp_path)
    weights = (tmp_path / "diffusion_pytorch_model.safetensors").read_bytes()
    stats = latent_statistics(tiny_vae, radio_map_items(3), batch_size=3, device="cpu")
    write_latent_scale(tmp_path, stats.scaling_factor, stats.shift_factor)
    reloaded = AutoencoderKL.from_pretrained(tmp_path)
    assert reloaded.config.scaling_factor == pytest.approx(stats.scaling_factor)
    assert reloaded.config.shift_factor == pytest.approx(stats.shift_factor)
    # diffusers pipelines that find per-channel statistics normalise with them too: they must stay unset
    assert reloaded.config.latents_mean is None and reloaded.config.latents_std is None
    assert (tmp_path / "diffusion_pytorch_model.safetensors").read_bytes() == weights

    write_latent_scale(tmp_path, 0.3)  # RadioDiff's fixed value stays selectable, without a shift
    config = AutoencoderKL.from_pretrained(tmp_path).config
    assert (config.scaling_factor, config.shift_factor) == (0.3, None)
    with pytest.raises(ValueError, match="positive"):
        write_latent_scale(tmp_path, 0.0)


# --- the commands, end to end on a tiny synthetic split --------------------------------------------------------


def test_evaluate_command_writes_metrics_csv_and_gallery_for_the_split(tiny_vae, tmp_path, capsys):
    config, model = write_tiny_run(tmp_path, tiny_vae)
    out = tmp_path / "eval" / "metrics.json"
    assert main(["evaluate", "--model", model, "--variant", "ema", "--config", config, "--split", "test",
                 "--out", str(out), "--gallery", "1", "--batch-size", "2", "--device", "cpu"]) == 0
    metrics = strict_json(out)
    test_maps = build_dataset(load_vae_config(config).data, "test")
    assert (metrics["split"], metrics["variant"], metrics["num_maps"]) == ("test", "ema", len(test_maps))
    with (tmp_path / "eval" / "per_image.csv").open() as handle:
        assert [row["name"] for row in csv.DictReader(handle)] == [test_maps[i]["name"] for i in range(len(test_maps))]
    assert (tmp_path / "eval" / "gallery.png").is_file()
    assert "nmse" in capsys.readouterr().out


def test_evaluate_defaults_to_the_runs_config_ema_weights_val_split_and_a_folder_inside_the_run(
    tiny_vae, tmp_path, monkeypatch, capsys
):
    (tmp_path / "run").mkdir()
    config, model = write_tiny_run(tmp_path / "run", tiny_vae)  # config.yaml beside vae/, as a run leaves it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    command = ["evaluate", "--model", model, "--batch-size", "2", "--device", "cpu"]

    assert main(command) == 0
    metrics = strict_json(tmp_path / "run" / "evaluation" / "ema-val" / "metrics.json")
    val_maps = build_dataset(load_vae_config(config).data, "val")
    assert (metrics["split"], metrics["variant"], metrics["num_maps"]) == ("val", "ema", len(val_maps))
    assert (tmp_path / "run" / "evaluation" / "ema-val" / "per_image.csv").is_file()
    assert list(elsewhere.iterdir()) == []

    capsys.readouterr()
    assert main(command) == 2  # never overwritten silently
    assert "ema-val/metrics.json exists; give --overwrite" in capsys.readouterr().err
    assert main(command + ["--overwrite"]) == 0
    assert main(command + ["--variant", "main"]) == 0
    assert strict_json(tmp_path / "run" / "evaluation" / "main-val" / "metrics.json")["variant"] is None


def test_evaluate_without_config_outside_a_run_says_to_give_one(tiny_vae, tmp_path, capsys):
    tiny_vae.save_pretrained(tmp_path / "vae")
    assert main(["evaluate", "--model", str(tmp_path / "vae"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'config.yaml'}: not found" in error and "give --config" in error


def test_latent_scale_command_measures_and_writes_or_sets_radiodiffs_value(tiny_vae, tmp_path):
    config, model = write_tiny_run(tmp_path, tiny_vae)
    assert main(["latent-scale", "--model", model, "--config", config, "--write", "--device", "cpu"]) == 0
    train_maps = build_dataset(load_vae_config(config).data, "train")
    expected = latent_statistics(tiny_vae, train_maps, batch_size=8, device="cpu")
    assert AutoencoderKL.from_pretrained(model).config.scaling_factor == pytest.approx(expected.scaling_factor)

    assert main(["latent-scale", "--model", model, "--scaling-factor", "0.3"]) == 0
    assert AutoencoderKL.from_pretrained(model).config.scaling_factor == 0.3


def test_commands_name_a_model_folder_that_is_not_one(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    assert main(["evaluate", "--model", str(tmp_path / "missing"), "--config", str(config)]) == 2
    assert "missing" in capsys.readouterr().err
