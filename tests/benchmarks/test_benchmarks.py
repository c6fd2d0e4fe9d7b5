"""What of the benchmarks can be checked without a GPU: the batch search's arithmetic, gpu.sh's control flow and
its refusals, and the sampling benchmark's table on tiny models."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from tests.helpers.tiny_runs import REPO, subprocess_env

BENCHMARKS = REPO / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import each other as siblings, as `python benchmarks/x.py` does
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_batch_estimate_extrapolates_peak_memory_linearly_to_the_fill_fraction():
    max_batch = load("max_batch")
    # 200 MiB per image on top of 600 MiB: 85 % of 10000 MiB holds (8500 - 600) / 200 = 39.5 -> 38 (even)
    assert max_batch.estimate({2: 1000.0, 4: 1400.0}, 10000.0, 0.85) == 38
    # memory that does not grow (a CPU's resident set can shrink) never divides by zero
    assert max_batch.estimate({2: 1000.0, 4: 900.0}, 10000.0, 0.85) >= 2


def run_gpu_sh(*args, **env):
    return subprocess.run(["bash", str(BENCHMARKS / "gpu.sh"), *args], capture_output=True, text=True,
                          env={**subprocess_env(), **env}, timeout=120)


def test_gpu_sh_refuses_bad_arguments_and_a_missing_gpu(tmp_path):
    assert run_gpu_sh().returncode == 2
    unknown = run_gpu_sh(str(tmp_path), "--fast")
    assert unknown.returncode == 2 and "error: unknown option --fast" in unknown.stderr
    if not os.environ.get("CUDA_VISIBLE_DEVICES") and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    no_gpu = run_gpu_sh(str(tmp_path / "out"))
    assert no_gpu.returncode == 2 and "error: no CUDA device is visible" in no_gpu.stderr


def test_gpu_sh_skips_what_its_budget_does_not_cover_and_still_writes_every_table(tmp_path):
    result = run_gpu_sh(str(tmp_path), "--device", "cpu", "--tiny", GPU_BENCH_BUDGET_S="0")
    expected = ["stage1_batch2", "stage2_sampling_fp32", "stage2_sampling_bf16", "stage2_sampling_bf16_compile",
                "stage1_max_batch_search"]
    ldm_steps = 3 if (BENCHMARKS / "ldm_train_step.py").is_file() else 0
    assert result.returncode == len(expected) + ldm_steps, result.stderr
    for name in expected:
        assert (tmp_path / f"{name}.md").read_text().startswith("skipped: the 0 s budget")
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# benchmarks/gpu.sh on CPU") and "## stage2_train_step_bf16" in summary


@pytest.mark.slow
def test_sampling_benchmark_prints_one_row_per_formulation_with_each_step_count_side_by_side():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "sampling.py"), "--device", "cpu", "--size", "32", "--steps", "1", "2",
         "--repeats", "1"], capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| formulation | s/map, 1 step (NFE) | s/map, 2 steps (NFE) | GFLOP/map at 2 |")
    radiodiff, flow_matching = rows[1].split(" | "), rows[2].split(" | ")
    # RadioDiff's sampler splits its last step: one denoiser call more than its steps
    assert radiodiff[0] == "| radiodiff" and radiodiff[1].endswith("(2)") and radiodiff[2].endswith("(3)")
    assert flow_matching[0] == "| flow_matching" and flow_matching[1].endswith("(1)")
    assert float(radiodiff[3]) > float(flow_matching[3]) > 0  # GFLOP per map: one more denoiser call


def test_gpu_sh_only_runs_the_steps_gpu_bench_only_names(tmp_path):
    # a rerun that completes an earlier call: the steps not named leave no table and do not count as incomplete
    result = run_gpu_sh(str(tmp_path), "--device", "cpu", "--tiny", GPU_BENCH_BUDGET_S="0",
                        GPU_BENCH_ONLY="stage1_max_batch,stage2_sampling_bf16")
    assert result.returncode == 3, result.stderr
    written = sorted(path.name for path in tmp_path.glob("*.md"))
    assert written == ["stage1_max_batch_search.md", "stage2_sampling_bf16.md", "stage2_sampling_bf16_compile.md",
                       "summary.md"]


@pytest.mark.slow
def test_second_stage_step_benchmark_runs_a_batch_larger_than_a_small_dataset_and_counts_its_flops():
    # the H200 run found batches above the benchmark's fixed 28 training maps refused; a GPU's batch 32 must run
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "ldm_train_step.py"), "--size", "32", "--batch-size", "40", "--steps", "1",
         "--warmup", "1", "--variants", "encoded"], capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].split("|")[3:8] == [" images/s ", " peak MiB ", " GFLOP/step ", " TFLOP/s ", " of peak "]
    encoded = [cell.strip() for cell in rows[1].split("|")[1:-1]]
    assert encoded[0] == "encoded" and float(encoded[4]) > 0, rows[1]  # counted FLOPs, not a failure line


def test_the_engine_comparison_scores_an_offset_as_its_bias_and_counts_unlit_pixels_as_disagreement():
    engines = load("engines")
    buildings = np.zeros((32, 32), dtype=bool)
    buildings[10:20, 14:18] = True
    sionna = np.where(buildings, 0, 100).astype(np.uint8)
    sionna[:, 28:] = 0  # four columns the ray tracer leaves unlit
    fast = np.where(buildings, 0, 110).astype(np.uint8)  # 10 gray levels brighter everywhere it lights
    tally = engines.Tally()
    tally.add(fast, sionna, buildings, (16, 4))
    rmse, bias, fast_lit, sionna_lit, both_lit, agree = tally.row("all")
    step_db = (engines.GAIN_CEILING_DB - engines.GAIN_FLOOR_DB) / 255
    assert rmse == pytest.approx(10 * step_db) and bias == pytest.approx(10 * step_db)
    street = (~buildings).sum() - 1  # not the transmitter's pixel
    assert fast_lit == 1.0 and agree == both_lit == sionna_lit == pytest.approx((street - 4 * 32) / street)
    assert tally.pixels["line of sight"] + tally.pixels["shadow"] == street


def test_the_engine_comparison_reads_a_ray_traced_folder_city_by_city_and_stops_at_the_first_incomplete_one(tmp_path):
    engines = load("engines")
    from PIL import Image
    from radiodiff.data.synthetic import generate_map

    # a folder laid out as `radiodiff synth --engine sionna` lays it out, holding the fast engine's own maps, so that
    # read back and compared with the fast engine they must agree exactly; city 2 is incomplete
    gain = tmp_path / "gain" / "SionnaRT"
    gain.mkdir(parents=True)
    record_text = '{"generator_version": 1, "seed": 3, "size": 32, "tx_per_map": 2, "samples_per_tx": 1000, "max_depth": 1}'
    (gain / "synth.json").write_text(record_text)
    for map_id in range(3):
        city = generate_map(3, map_id, 32, 2)
        for tx in range(2 if map_id < 2 else 1):
            Image.fromarray(city.gain_maps[tx]).save(gain / f"{map_id}_{tx}.png")
    record, cities = engines.read_sionna_folder(tmp_path, None)
    assert record["size"] == 32 and [city.map_id for city in cities] == [0, 1]
    tally = engines.compare([generate_map(3, city.map_id, 32, 2) for city in cities], cities)
    rmse, bias, *_shares, agree = tally.row("all")
    assert rmse == 0 and bias == 0 and agree == 1.0
    assert [city.map_id for city in engines.read_sionna_folder(tmp_path, 1)[1]] == [0]
    with pytest.raises(SystemExit, match="synth.json: not found"):
        engines.read_sionna_folder(tmp_path / "elsewhere", None)
    (gain / "synth.json").write_text(record_text.replace('"generator_version": 1', '"generator_version": 0'))
    with pytest.raises(SystemExit, match="layout version 0"):
        engines.read_sionna_folder(tmp_path, None)


def test_learning_curves_turn_minutes_into_idle_core_steps_and_pick_each_config_s_script():
    curves = load("learning_curves")
    run = curves.Run.parse("RadioUNet configs/radiounet_quickstart.yaml 88 train.batch_size=4")
    assert (run.label, run.ms_per_step, run.overrides) == ("RadioUNet", 88.0, ["train.batch_size=4"])
    assert run.script == "train_radiounet.py" and run.steps(4) == 2727 and run.steps(0.001) == 1
    assert curves.Run.parse("pixel configs/ldm_pixel_quickstart.yaml 100").script == "train_ldm.py"


def test_learning_curves_score_an_evaluated_budget_without_training_it_again(tmp_path):
    curves = load("learning_curves")
    metrics = tmp_path / "pixel-2min" / "evaluation" / "test.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text('{"rows": {"model": {"metrics": {"nmse": {"mean": 0.02}, "psnr": {"mean": 29.0}}}}}')
    run = curves.Run.parse("pixel configs/ldm_pixel_quickstart.yaml 100")
    point = curves.train_and_score(run, 2, tmp_path, "test")
    assert point == {"label": "pixel", "minutes": 2, "steps": 1200, "nmse": 0.02, "psnr": 29.0}
    curves.write_figure([point, {**point, "minutes": 4, "nmse": 0.015}], tmp_path / "curves.png", "test")
    assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.slow
def test_the_rival_step_benchmark_times_each_config_against_the_first(tmp_path):
    # its own cache: the shared one holds exactly one synthetic set, which other tests look up
    tiny = (f"data.synthetic.maps=8 data.synthetic.size=32 data.synthetic.cache_dir={tmp_path / 'synthetic'} "
            "train.batch_size=2 train.mixed_precision=no")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "rival_step.py"), "--steps", "2", "--warmup", "1", "--budget-s", "60",
         "--reference-ms", "100", "--config", f"configs/radiounet_quickstart.yaml {tiny} model.sample_size=32",
         "--config", f"configs/ldm_pixel_quickstart.yaml {tiny}"],
        capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| configs/")]
    assert len(rows) == 2
    first = rows[0].split("|")
    assert first[3].strip() == "1.00" and first[4].strip() == "600"  # 60 s at 100 ms
