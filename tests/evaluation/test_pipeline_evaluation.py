"""Evaluation of a second-stage pipeline: the model row, the VAE ceiling, the physics baseline, the command."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from tests.helpers.map_fixtures import tiny_pipeline, tiny_radiounet_pipeline, write_tiny_run

from radiodiff.cli import main
from radiodiff.config import load_data_config
from radiodiff.data import build_dataset
from radiodiff.data.propagation import GAIN_CEILING_DB, GAIN_FLOOR_DB
from radiodiff.evaluation import (
    evaluate_pipeline,
    evaluate_vae,
    log_distance_map,
    reconstruction_metrics,
    to_unit_range,
    write_pipeline_metrics,
)
from radiodiff.pipelines import rasterize_transmitter

# --- the physics baseline ------------------------------------------------------------------------------------


def baseline_of(buildings: torch.Tensor, x: int, y: int) -> torch.Tensor:
    size = buildings.shape[-1]
    return log_distance_map(buildings[None, None], rasterize_transmitter(x, y, size, size)[None])[0, 0]


def test_baseline_is_the_ceiling_at_the_transmitter_and_falls_with_distance():
    gain = baseline_of(torch.zeros(64, 64), x=10, y=20)
    assert gain[20, 10] == pytest.approx(1.0)
    along_the_row = gain[20, 10:].numpy()
    assert np.all(np.diff(along_the_row) < 0)
    assert torch.equal(gain, gain.clamp(0, 1))
    # 30 pixels of a 64-pixel, 256 m map: 120 m; free space's 20 dB per decade below the 1 m ceiling
    expected_db = GAIN_CEILING_DB - 20 * math.log10(120.0)
    assert gain[20, 40].item() == pytest.approx((expected_db - GAIN_FLOOR_DB) / (GAIN_CEILING_DB - GAIN_FLOOR_DB),
                                                rel=1e-5)


def test_baseline_is_zero_on_buildings_and_ignores_them_elsewhere():
    city = torch.zeros(32, 32)
    city[10:20, 5:25] = 1.0
    with_city, open_ground = baseline_of(city, x=2, y=2), baseline_of(torch.zeros(32, 32), x=2, y=2)
    assert torch.all(with_city[city > 0] == 0)
    assert torch.equal(with_city[city == 0], open_ground[city == 0])


def test_baseline_is_symmetric_about_the_transmitter_and_one_line_errors():
    gain = baseline_of(torch.zeros(33, 33), x=16, y=16)
    assert torch.equal(gain, gain.flip(0)) and torch.equal(gain, gain.T)
    with pytest.raises(ValueError, match="map 0 has 0 lit pixels; expected exactly one"):
        log_distance_map(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="expected buildings and transmitter of one shape"):
        log_distance_map(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4))


# --- evaluate_pipeline on a tiny synthetic split ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder with a second-stage config.yaml (14 synthetic 32x32 cities), vae/ and pipeline/ (random
    weights)."""
    folder = tmp_path_factory.mktemp("run")
    pipe = tiny_pipeline("radiodiff")
    config, _ = write_tiny_run(folder, pipe.vae)
    with open(config, "a") as handle:  # sections the first stage's schema does not know
        handle.write("denoiser:\n  preset: tiny\ndiffusion:\n  sampling_steps: 2\n")
    pipe.register_to_config(default_num_inference_steps=2)  # as the trainer exports the run's sampling_steps
    pipe.save_pretrained(folder / "pipeline")
    return folder, config, pipe


@pytest.fixture(scope="module")
def val_maps(tiny_run):
    return build_dataset(load_data_config(tiny_run[1]), "val", with_conditions=True)


def test_rows_hold_the_model_the_vae_round_trip_and_the_baseline_on_the_same_maps(tiny_run, val_maps):
    pipe = tiny_run[2]
    result = evaluate_pipeline(pipe, val_maps, num_inference_steps=3, batch_size=2, device="cpu", seed=0)
    assert result.names == [val_maps[i]["name"] for i in range(len(val_maps))]
    # the ceiling is the VAE's own posterior-mode reconstruction, as the first stage evaluates it
    vae_only = evaluate_vae(pipe.vae, val_maps, batch_size=2, device="cpu")
    for name in ("nmse", "rmse", "ssim", "psnr"):
        np.testing.assert_allclose(result.per_map["vae_ceiling"][name], vae_only.per_image[name], rtol=1e-5)
    items = [val_maps[i] for i in range(len(val_maps))]
    baseline = log_distance_map(torch.stack([i["buildings"] for i in items]), torch.stack([i["transmitter"] for i in items]))
    truth = to_unit_range(torch.stack([i["gain_map"] for i in items]))
    np.testing.assert_allclose(result.per_map["physics_baseline"]["nmse"],
                               reconstruction_metrics(baseline, truth)["nmse"].numpy(), rtol=1e-6)
    # the split-last-step sampler: 3 steps, 4 denoiser calls
    assert result.nfe == 4 and result.seconds_per_map > 0
    summary = result.summary()
    assert set(summary["rows"]) == {"model", "vae_ceiling", "physics_baseline"}
    assert summary["rows"]["model"]["nfe"] == 4 and "nfe" not in summary["rows"]["vae_ceiling"]
    model_nmse = summary["rows"]["model"]["metrics"]["nmse"]
    assert model_nmse["mean"] == pytest.approx(result.per_map["model"]["nmse"].mean())
    assert model_nmse["ci95"][0] < model_nmse["mean"] < model_nmse["ci95"][1]


def test_each_map_has_its_own_seed_so_the_batch_size_does_not_change_the_samples(tiny_run, val_maps):
    pipe = tiny_run[2]
    one_by_one = evaluate_pipeline(pipe, val_maps, num_inference_steps=2, batch_size=1, device="cpu", seed=3)
    batched = evaluate_pipeline(pipe, val_maps, num_inference_steps=2, batch_size=2, device="cpu", seed=3)
    other_seed = evaluate_pipeline(pipe, val_maps, num_inference_steps=2, batch_size=2, device="cpu", seed=4)
    np.testing.assert_allclose(one_by_one.per_map["model"]["nmse"], batched.per_map["model"]["nmse"], rtol=1e-4)
    assert not np.allclose(batched.per_map["model"]["nmse"], other_seed.per_map["model"]["nmse"], rtol=1e-4)


def test_a_trainers_pipeline_is_evaluated_in_eval_mode_and_left_in_training_mode(tiny_run, val_maps):
    pipe = tiny_pipeline("radiodiff", vae=tiny_run[2].vae)
    for module in (pipe.unet, pipe.condition_encoder, pipe.vae):
        module.train()
    modes = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    evaluate_pipeline(pipe, val_maps, num_inference_steps=1, batch_size=2, device="cpu")
    hook.remove()
    assert modes and not any(modes)
    assert pipe.unet.training and pipe.condition_encoder.training and pipe.vae.training


@pytest.mark.parametrize("formulation, nfe", [("flow_matching", 3), ("regression", 1)])
def test_the_evaluation_records_each_formulation_s_denoiser_calls_and_no_eta(tiny_run, val_maps, formulation, nfe):
    pipe = tiny_pipeline(formulation, vae=tiny_run[2].vae)
    result = evaluate_pipeline(pipe, val_maps, num_inference_steps=3, batch_size=2, device="cpu")
    assert (result.nfe, result.formulation, result.eta) == (nfe, formulation, None)


def test_metrics_json_is_strict_and_the_csv_has_every_row_per_map(tiny_run, val_maps, tmp_path):
    result = evaluate_pipeline(tiny_run[2], val_maps, num_inference_steps=1, batch_size=2, device="cpu")
    json_path = write_pipeline_metrics(result, tmp_path / "out")
    assert json_path == tmp_path / "out" / "metrics.json"
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(result.summary()))
    with (tmp_path / "out" / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == result.names
    assert float(rows[1]["physics_baseline_rmse"]) == result.per_map["physics_baseline"]["rmse"][1]
    assert len(rows[0]) == 1 + 3 * 4
    assert not list((tmp_path / "out").glob(".*tmp"))


# --- the command -----------------------------------------------------------------------------------------------


def test_evaluate_on_a_pipeline_folder_prints_the_table_and_writes_inside_the_run(tiny_run, tmp_path, capsys,
                                                                                  monkeypatch):
    folder = tiny_run[0]
    monkeypatch.chdir(tmp_path)
    # no --steps: the 2 steps the folder saved, in the folder's name and metrics.json
    command = ["evaluate", "--model", str(folder / "pipeline"), "--batch-size", "2", "--device", "cpu", "--gallery", "1"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    for label in ("| model |", "| VAE ceiling |", "| physics baseline |"):
        assert label in printed
    out = folder / "evaluation" / "pipeline-val-2steps"
    summary = json.loads((out / "metrics.json").read_text())
    assert (summary["num_inference_steps"], summary["num_maps"], summary["rows"]["model"]["nfe"]) == (2, 2, 3)
    assert (out / "gallery.png").stat().st_size > 0 and (out / "per_image.csv").is_file()
    assert list(tmp_path.iterdir()) == []

    assert main(command) == 2  # never overwritten silently
    assert "metrics.json exists; give --overwrite" in capsys.readouterr().err
    assert main(command + ["--overwrite", "--seed", "1"]) == 0
    assert json.loads((out / "metrics.json").read_text())["seed"] == 1
    assert json.loads((out / "metrics.json").read_text())["eta"] == 1.0  # the exported scheduler's, the original's

    # another eta is another folder, recorded in metrics.json and the table's heading; eta 0 draws no step noise,
    # so the maps do not depend on the generator's later numbers
    assert main(command + ["--eta", "0"]) == 0
    assert "radiodiff formulation, 2 steps, eta 0, seed 0" in capsys.readouterr().out
    deterministic = json.loads((folder / "evaluation" / "pipeline-val-2steps-eta0" / "metrics.json").read_text())
    assert deterministic["eta"] == 0.0
    assert deterministic["rows"]["model"]["metrics"] != summary["rows"]["model"]["metrics"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sample-posterior"], "is a pipeline; it applies to a VAE folder only"),
        (["--steps", "0"], "--steps: 0; expected an integer >= 1"),
        (["--eta", "1.5"], "--eta: 1.5; expected a value in [0, 1]"),
    ],
)
def test_evaluate_refuses_options_that_do_not_apply_with_one_line(tiny_run, tmp_path, capsys, extra, message):
    folder = tiny_run[0]
    assert main(["evaluate", "--model", str(folder / "pipeline"), "--out", str(tmp_path), *extra]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


@pytest.mark.parametrize("option", [["--steps", "5"], ["--eta", "0"]])
def test_sampling_options_on_a_vae_folder_are_refused(tiny_run, tmp_path, capsys, option):
    assert main(["evaluate", "--model", str(tiny_run[0] / "vae"), *option, "--out", str(tmp_path)]) == 2
    assert f"is a VAE folder; {option[0]} applies to a pipeline folder" in capsys.readouterr().err


def test_evaluate_scores_a_radiounet_pipeline_beside_the_physics_baseline_without_a_vae_ceiling(
    tiny_run, val_maps, tmp_path, capsys
):
    run = tmp_path / "radiounet"
    run.mkdir()
    (run / "config.yaml").write_text(open(tiny_run[1]).read())  # the same maps
    pipe = tiny_radiounet_pipeline()
    pipe.save_pretrained(run / "pipeline")
    command = ["evaluate", "--model", str(run / "pipeline"), "--batch-size", "2", "--device", "cpu"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "| model |" in printed and "| physics baseline |" in printed and "VAE ceiling" not in printed
    summary = json.loads((run / "evaluation" / "pipeline-val" / "metrics.json").read_text())
    assert summary["rows"]["vae_ceiling"] is None
    assert (summary["formulation"], summary["num_inference_steps"], summary["rows"]["model"]["nfe"]) == (None, None, 1)
    items = [val_maps[i] for i in range(len(val_maps))]
    with torch.no_grad():
        predicted = pipe.unet(torch.stack([i["buildings"] for i in items]),
                              torch.stack([i["transmitter"] for i in items])).sample.clamp(0, 1)
    nmse = reconstruction_metrics(predicted, to_unit_range(torch.stack([i["gain_map"] for i in items])))["nmse"]
    assert summary["rows"]["model"]["metrics"]["nmse"]["mean"] == pytest.approx(float(nmse.mean()), rel=1e-5)

    # one pass, no sampler: its options are refused with one line
    assert main([*command, "--steps", "2", "--out", str(tmp_path / "steps")]) == 2
    error = capsys.readouterr().err
    assert "--steps: " in error and "maps in one pass without a sampler" in error and error.count("\n") == 1


def test_a_pipeline_folder_without_weights_is_one_error_line(tiny_run, tmp_path, capsys):
    broken = tmp_path / "pipeline"
    broken.mkdir()
    (broken / "model_index.json").write_text((tiny_run[0] / "pipeline" / "model_index.json").read_text())
    assert main(["evaluate", "--model", str(broken), "--config", tiny_run[1], "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "expected a saved pipeline folder" in error and error.count("error:") == 1


def test_the_data_section_of_either_stages_config_is_read_with_overrides_and_checked(tmp_path):
    from radiodiff.config import ConfigError

    config = tmp_path / "config.yaml"
    config.write_text("denoiser:\n  preset: tiny\ndata:\n  synthetic:\n    maps: 3\n")
    data = load_data_config(config, ["data.synthetic.size=16", "train.max_steps=7"])
    assert (data.source, data.synthetic.maps, data.synthetic.size) == ("synthetic", 3, 16)
    config.write_text("data:\n  sorce: synthetic\n")
    with pytest.raises(ConfigError, match=f"{config}: unknown key data.sorce; did you mean data.source"):
        load_data_config(config)


def test_baseline_is_the_synthetic_generators_law_exact_in_line_of_sight_and_an_upper_bound_elsewhere(val_maps):
    for index in range(len(val_maps)):
        item = val_maps[index]
        baseline = log_distance_map(item["buildings"][None], item["transmitter"][None])[0, 0]
        truth = to_unit_range(item["gain_map"])[0]
        free = item["buildings"][0] == 0
        quantum = 1 / 255 + 1e-6
        # diffraction only adds loss: no free pixel is stronger than free-space decay
        assert ((truth - baseline)[free] <= quantum).all()
        # in line of sight the generator's map is that decay, to 8-bit rounding
        assert ((baseline - truth).abs()[free] <= quantum).float().mean() > 0.2
