"""`radiodiff compare`: every model on the same maps, beside the train mean, the physics baseline and the ceiling."""

import json
import shutil

import numpy as np
import pytest
import torch
from tests.helpers.map_fixtures import tiny_pipeline, write_tiny_run

from radiodiff.cli import main
from radiodiff.config import load_data_config
from radiodiff.data import build_dataset
from radiodiff.evaluation import log_distance_map, reconstruction_metrics, to_unit_range
from radiodiff.evaluation.compare import (
    COLUMNS,
    Contender,
    compare_models,
    format_comparison,
    TrainingTime,
    map_scores,
    pipeline_contender,
    pipeline_steps,
    run_compare,
)
from radiodiff.evaluation.regions import building_edges, map_regions
from radiodiff.pipelines import rasterize_transmitter

FIRST_STAGE_S, SECOND_STAGE_S = 100.0, 12.5


def finished_run(folder, config_text: str, wall_time_s: float) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(config_text)
    (folder / "training_summary.json").write_text(json.dumps({"steps": 8, "wall_time_s": wall_time_s}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A first-stage run (vae/) and two second-stage runs on its VAE (radiodiff and flow matching), all trained
    on the same 14 synthetic 32x32 cities (24 train, 2 val, 2 test maps), with the wall times they recorded."""
    root = tmp_path_factory.mktemp("runs")
    radiodiff = tiny_pipeline("radiodiff")
    (root / "vae_run").mkdir()
    config, _ = write_tiny_run(root / "vae_run", radiodiff.vae)
    data = open(config).read()
    finished_run(root / "vae_run", data, FIRST_STAGE_S)
    for formulation, pipe in (("radiodiff", radiodiff), ("flow_matching", tiny_pipeline("flow_matching",
                                                                                       vae=radiodiff.vae))):
        folder = root / f"{formulation}_run"
        pipe.register_to_config(default_num_inference_steps=2)
        pipe.save_pretrained(folder / "pipeline")
        finished_run(folder, data + f"vae:\n  path: {root / 'vae_run' / 'vae'}\n", SECOND_STAGE_S)
    return root


@pytest.fixture(scope="module")
def test_maps(runs):
    return build_dataset(load_data_config(runs / "vae_run" / "config.yaml"), "test", with_conditions=True)


def every_map(dataset) -> dict[str, torch.Tensor]:
    items = [dataset[index] for index in range(len(dataset))]
    return {key: torch.stack([item[key] for item in items]) for key in ("gain_map", "buildings", "transmitter")}


# --- the table -------------------------------------------------------------------------------------------------


def test_the_table_has_the_references_each_pipeline_at_each_step_count_and_one_ceiling_per_vae(runs, tmp_path,
                                                                                                capsys):
    models = [str(runs / "radiodiff_run"), str(runs / "flow_matching_run" / "pipeline"), str(runs / "vae_run")]
    result = run_compare(models, out=str(tmp_path / "out"), steps=[1, 2], batch_size=2)
    labels = [row.contender.label for row in result.rows]
    assert labels == [
        "train mean", "physics baseline",
        f"{models[0]} (radiodiff, 1 steps)", f"{models[0]} (radiodiff, 2 steps)",
        f"{models[1]} (flow_matching, 1 steps)", f"{models[1]} (flow_matching, 2 steps)",
        f"VAE ceiling ({models[0]})",  # the three folders share one VAE: one ceiling
    ]
    summary = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert summary["split"] == "test" and summary["num_maps"] == 2
    for row in summary["rows"]:
        assert set(row["metrics"]) == set(COLUMNS) == {"nmse", "rmse", "ssim", "psnr", "nmse_los", "nmse_shadow",
                                                       "nmse_edge"}
        assert row["ms_per_map"] > 0
    second_stage, ceiling, baseline = summary["rows"][2], summary["rows"][-1], summary["rows"][1]
    # a second stage's time counts the first stage it was trained on; the ceiling is the first stage's
    assert second_stage["training"] == {"total_s": FIRST_STAGE_S + SECOND_STAGE_S, "run_s": SECOND_STAGE_S,
                                        "first_stage_s": FIRST_STAGE_S}
    assert ceiling["training"] == {"total_s": FIRST_STAGE_S, "run_s": FIRST_STAGE_S}
    assert baseline["training"] == {"total_s": None, "run_s": None}
    assert second_stage["num_inference_steps"] == 1
    table = (tmp_path / "out" / "comparison.md").read_text()
    assert table in capsys.readouterr().out + "\n"
    assert ("| model | NMSE [95% CI] | RMSE [95% CI] | SSIM [95% CI] | PSNR dB [95% CI] | NMSE LOS | NMSE shadow "
            "| NMSE edge | training | ms/map |") in table
    assert "| 1.9 min (12 s + 1.7 min first stage) |" in table
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + len(labels)
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 0


def test_without_steps_each_pipeline_samples_at_its_own_count(runs, tmp_path):
    result = run_compare([str(runs / "radiodiff_run")], out=str(tmp_path), split="val", batch_size=2)
    assert [row.contender.num_inference_steps for row in result.rows] == [None, None, 2, None]


def test_the_train_mean_row_scores_the_training_maps_per_pixel_mean(runs, test_maps, tmp_path):
    result = run_compare([str(runs / "vae_run")], out=str(tmp_path), batch_size=3)
    train = build_dataset(load_data_config(runs / "vae_run" / "config.yaml"), "train")
    mean_map = np.mean([to_unit_range(train[i]["gain_map"]).numpy() for i in range(len(train))], axis=0)
    truth = to_unit_range(every_map(test_maps)["gain_map"]).numpy()
    by_hand = ((mean_map - truth) ** 2).sum(axis=(1, 2, 3)) / (truth**2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(result.rows[0].per_map["nmse"], by_hand, rtol=1e-5)
    assert result.rows[0].contender.label == "train mean"


def test_every_row_is_scored_with_the_shared_metric_definitions(test_maps):
    maps = every_map(test_maps)
    result = compare_models([Contender("physics baseline", "physics_baseline", lambda batch, positions:
                                       log_distance_map(batch["buildings"], batch["transmitter"]))],
                            test_maps, batch_size=1, device="cpu")
    baseline = log_distance_map(maps["buildings"], maps["transmitter"])
    expected = reconstruction_metrics(baseline, to_unit_range(maps["gain_map"]))
    for name, values in expected.items():
        np.testing.assert_allclose(result.rows[0].per_map[name], values.numpy(), rtol=1e-5)


def test_a_perfect_predictor_scores_nmse_zero_and_its_infinite_psnr_is_reported_not_averaged(test_maps):
    perfect = Contender("truth", "pipeline", lambda batch, positions: to_unit_range(batch["gain_map"]))
    result = compare_models([perfect], test_maps, batch_size=2, device="cpu")
    row = result.summary()["rows"][0]
    for name in ("nmse", "rmse", "nmse_los", "nmse_shadow", "nmse_edge"):
        assert row["metrics"][name]["mean"] == 0.0
    assert row["metrics"]["ssim"]["mean"] == pytest.approx(1.0)
    assert row["metrics"]["psnr"]["mean"] is None and row["non_finite"]["psnr"] == len(test_maps)
    json.dumps(result.summary(), allow_nan=False)  # strict JSON
    assert "| truth | 0 [0, 0] | 0 [0, 0] | 1 [1, 1] | ∞ |" in format_comparison(result.summary())


def test_the_figure_keeps_the_maps_each_row_predicted_during_the_pass(test_maps):
    constant = Contender("half", "train_mean", lambda batch, positions: torch.full_like(batch["gain_map"], 0.5))
    result = compare_models([constant], test_maps, batch_size=1, device="cpu", figure_maps=6)
    assert result.figure_names == result.names  # fewer maps than the figure's six: every one
    assert torch.equal(result.figure["truth"], to_unit_range(every_map(test_maps)["gain_map"]))
    assert torch.equal(result.figure[0], torch.full((2, 1, 32, 32), 0.5))


class OnePassPipeline:
    """A pipeline with no scheduler (a supervised network's): it records the options of each call."""

    components = {"unet": torch.nn.Identity()}

    def __init__(self):
        self.calls = []

    def __call__(self, buildings, transmitter, **options):
        self.calls.append(options)
        return type("Output", (), {"images": torch.zeros_like(buildings)})()


def test_a_pipeline_without_a_scheduler_is_one_row_called_without_steps(test_maps):
    pipe = OnePassPipeline()
    assert pipeline_steps(pipe, [1, 2]) == [None]
    row = pipeline_contender(pipe, "one pass", source="somewhere", num_inference_steps=None, device="cpu", seed=0,
                             training=TrainingTime(30.0))
    result = compare_models([row], test_maps, batch_size=2, device="cpu")
    assert pipe.calls and all("num_inference_steps" not in options for options in pipe.calls)
    assert {options["output_type"] for options in pipe.calls} == {"pt"}
    assert result.summary()["rows"][0]["training"] == {"total_s": 30.0, "run_s": 30.0}


# --- the regions -----------------------------------------------------------------------------------------------


@pytest.fixture
def one_building_scene():
    """A 16x16 map with one 4x4 building (rows and columns 6..9) and the transmitter at row 8, column 1."""
    buildings = torch.zeros(1, 1, 16, 16)
    buildings[..., 6:10, 6:10] = 1.0
    return buildings, rasterize_transmitter(x=1, y=8, height=16, width=16)[None]


def test_behind_the_building_is_shadow_in_front_is_line_of_sight_and_the_building_is_neither(one_building_scene):
    regions = {name: mask[0, 0] for name, mask in map_regions(*one_building_scene).items()}
    assert regions["los"][8, 3] and not regions["shadow"][8, 3]  # between transmitter and building
    assert regions["shadow"][8, 13] and not regions["los"][8, 13]  # straight behind it
    assert regions["los"][1, 13]  # beside the shadow, in the open
    building = one_building_scene[0][0, 0] > 0
    assert not (regions["los"] | regions["shadow"])[building].any()
    # the two split the free pixels between them
    assert torch.equal(regions["los"] ^ regions["shadow"], ~building)


def test_edges_are_the_pixels_within_one_pixel_of_the_boundary_on_both_sides(one_building_scene):
    edges = map_regions(*one_building_scene)["edge"][0, 0]
    assert edges[6, 6] and edges[9, 7]  # building pixels on the boundary
    assert edges[8, 5] and edges[5, 5] and edges[10, 10]  # free pixels beside it, diagonals included
    assert not edges[7, 7] and not edges[8, 8]  # inside the building
    assert not edges[8, 4] and not edges[3, 3]  # two pixels away
    assert int(edges.sum()) == 6 * 6 - 2 * 2
    # a building at the map's border has no boundary with the outside
    assert not building_edges(np.ones((4, 4), dtype=bool)).any()


def test_region_nmse_is_the_nmse_of_the_regions_pixels_only(one_building_scene):
    buildings, transmitter = one_building_scene
    regions = map_regions(buildings, transmitter)
    truth = torch.full((1, 1, 16, 16), 0.5)
    prediction = torch.where(regions["shadow"], torch.tensor(0.25), truth)  # wrong in the shadow only
    scores = map_scores(prediction, truth, regions)
    assert scores["nmse_los"].item() == 0.0
    assert scores["nmse_shadow"].item() == pytest.approx(0.25**2 / 0.5**2)
    shadow_share = regions["shadow"].float().mean().item()
    assert scores["nmse"].item() == pytest.approx(shadow_share * 0.25**2 / 0.5**2)


# --- the command and bad input ---------------------------------------------------------------------------------


def test_the_command_writes_the_table_and_figure_and_refuses_an_existing_out(runs, tmp_path, capsys):
    out = tmp_path / "comparison"
    command = ["compare", str(runs / "radiodiff_run"), "--out", str(out), "--steps", "1", "--limit", "1",
               "--device", "cpu"]
    assert main(command) == 0
    assert sorted(path.name for path in out.iterdir()) == ["comparison.json", "comparison.md", "comparison.png"]
    assert json.loads((out / "comparison.json").read_text())["num_maps"] == 1
    capsys.readouterr()
    assert main(command) == 2
    error = capsys.readouterr().err
    assert "comparison.md exists; give --overwrite" in error and error.count("\n") == 1
    assert main(command + ["--overwrite"]) == 0
    assert not list(out.glob(".*tmp"))


def bad_input_error(capsys, out, *models, extra=()) -> str:
    assert main(["compare", *map(str, models), "--out", str(out), "--device", "cpu", *extra]) == 2
    assert not out.exists()
    # beside progress bars (diffusers' loading, the passes done before the error), one error line, the last
    printed = capsys.readouterr().err
    error = printed.splitlines()[-1]
    assert printed.count("error:") == 1 and "radiodiff compare: error: " in error
    return error


def test_a_folder_with_nothing_to_compare_is_one_error_line(runs, tmp_path, capsys):
    unfinished = tmp_path / "unfinished_run"
    finished_run(unfinished, (runs / "vae_run" / "config.yaml").read_text(), 1.0)
    error = bad_input_error(capsys, tmp_path / "out", runs / "radiodiff_run", unfinished)
    assert f"{unfinished}: neither a pipeline folder" in error


def test_a_pipeline_of_another_kind_is_one_error_line(runs, tmp_path, capsys):
    other = tmp_path / "other_run"
    shutil.copytree(runs / "radiodiff_run", other)
    index = json.loads((other / "pipeline" / "model_index.json").read_text())
    (other / "pipeline" / "model_index.json").write_text(json.dumps({**index, "_class_name": "DDPMPipeline"}))
    error = bad_input_error(capsys, tmp_path / "out", other)
    assert f"{other / 'pipeline' / 'model_index.json'}: a DDPMPipeline pipeline; expected one of radiodiff's" in error


def test_models_trained_on_other_maps_are_one_error_line_naming_the_one_that_differs(runs, tmp_path, capsys):
    other = tmp_path / "other_run"
    shutil.copytree(runs / "vae_run", other)
    config = other / "config.yaml"
    config.write_text(config.read_text().replace("tx_per_map: 2", "tx_per_map: 3"))
    error = bad_input_error(capsys, tmp_path / "out", runs / "radiodiff_run", other)
    assert (f"{other}: trained on other maps than {runs / 'radiodiff_run'} (data.synthetic.tx_per_map: 3, not 2)"
            in error)


@pytest.mark.parametrize("model", ["radiodiff_run", "vae_run"])
def test_maps_of_another_size_than_a_model_was_trained_on_are_one_error_line(runs, tmp_path, capsys, model):
    config = tmp_path / "small.yaml"
    config.write_text((runs / "vae_run" / "config.yaml").read_text().replace("size: 32", "size: 16"))
    error = bad_input_error(capsys, tmp_path / "out", runs / model, extra=["--config", str(config)])
    assert f"{runs / model}: " in error and "32" in error and "16" in error


def test_the_same_model_given_twice_is_one_error_line(runs, tmp_path, capsys):
    run = runs / "radiodiff_run"
    error = bad_input_error(capsys, tmp_path / "out", run, run / "pipeline")
    assert f"{run / 'pipeline'}: the same model as {run}; give each model once" in error
