"""One table of every model on the same maps: ``radiodiff compare``.

Rows: the constant train-mean map (the per-pixel mean of the training split's maps), the physics baseline
(:func:`~radiodiff.evaluation.baseline.log_distance_map`), each given pipeline at each step count, and the VAE
ceiling of each distinct VAE (a pipeline's own, or a first-stage run's). Columns: NMSE, RMSE, SSIM and PSNR
(:mod:`~radiodiff.evaluation.metrics`) with Student-t 95% intervals of the mean over maps, NMSE on line-of-sight,
shadowed and building-edge pixels (:mod:`~radiodiff.evaluation.regions`), training wall time and milliseconds per
map. A figure shows the same maps from every row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ..config import DataConfig, load_data_config, read_yaml
from ..data import build_dataset, prepare_data, unaugmented
from ..file_names import CONFIG_FILE, PIPELINE_INDEX_FILE, RUN_CONFIG_FILE, TRAINING_SUMMARY_FILE
from ..file_writing import write_atomically
from ..pipelines.pipeline_radiodiff import DEFAULT_NUM_INFERENCE_STEPS
from ..schedulers import formulation_of
from .baseline import log_distance_map, transmitter_positions
from .inference import batches, default_variant, inference, load_vae, spread_subset
from .commands import resolve_config
from .metrics import METRIC_NAMES, normalized_mse, reconstruction_metrics, summarize, to_unit_range
from .pipeline import generate, load_pipeline, map_generators, pipeline_inference, synchronize, vae_round_trip
from .regions import REGION_NAMES, map_regions

COLUMNS = (*METRIC_NAMES, *(f"nmse_{region}" for region in REGION_NAMES))
OUTPUT_FILES = ("comparison.md", "comparison.json", "comparison.png")
FIGURE_MAPS = 6
INTERVAL = "Student-t 95% interval of the mean over maps"
# fields of the data config that do not change which maps a split holds
_NOT_THE_MAPS = ("num_workers", "augment", "synthetic.cache_dir")

# a batch of the split (``gain_map``, ``buildings``, ``transmitter``) and the positions of its maps -> maps on [0, 1]
Predict = Callable[[dict[str, Any], range], torch.Tensor]


@dataclass
class TrainingTime:
    """What a row cost to train, from the runs' ``training_summary.json`` (``wall_time_s``); ``None`` if unknown.

    Args:
        run_s: the row's own run.
        first_stage_s: the first stage (VAE) run it was trained on, for a row that needs one.
        needs_first_stage: whether the row is built on a first stage whose time counts too.
    """

    run_s: float | None = None
    first_stage_s: float | None = None
    needs_first_stage: bool = False

    @property
    def total_s(self) -> float | None:
        parts = [self.run_s, self.first_stage_s] if self.needs_first_stage else [self.run_s]
        return None if None in parts else sum(parts)

    @classmethod
    def from_summary(cls, summary: dict[str, float | None]) -> TrainingTime:
        return cls(summary["run_s"], summary.get("first_stage_s"), needs_first_stage="first_stage_s" in summary)

    def summary(self) -> dict[str, float | None]:
        summary = {"total_s": self.total_s, "run_s": self.run_s}
        if self.needs_first_stage:
            summary["first_stage_s"] = self.first_stage_s
        return summary

    def cell(self) -> str:
        if not self.needs_first_stage or (self.run_s is None and self.first_stage_s is None):
            return _duration(self.run_s)
        return f"{_duration(self.total_s)} ({_duration(self.run_s)} + {_duration(self.first_stage_s)} first stage)"


@dataclass
class Contender:
    """One row of the comparison.

    Args:
        label: the row's name in the table.
        kind: ``"train_mean"``, ``"physics_baseline"``, ``"pipeline"`` or ``"vae_ceiling"``.
        predict: a batch and the dataset positions of its maps -> float32 (B, 1, H, W) maps on [0, 1], on the CPU.
        source: the folder the model was read from, if any.
        num_inference_steps: a pipeline's sampling steps (``None``: one pass, or not a pipeline).
        training: what it cost to train.
    """

    label: str
    kind: str
    predict: Predict
    source: str | None = None
    num_inference_steps: int | None = None
    training: TrainingTime = field(default_factory=TrainingTime)


@dataclass
class RowResult:
    """A contender's per-map values (``COLUMNS`` -> one value per map) and its sampling time."""

    contender: Contender
    per_map: dict[str, np.ndarray]
    seconds_per_map: float

    def summary(self) -> dict[str, Any]:
        contender = self.contender
        return {
            "label": contender.label,
            "kind": contender.kind,
            "source": contender.source,
            "num_inference_steps": contender.num_inference_steps,
            "metrics": {name: summarize(values) for name, values in self.per_map.items()},
            "non_finite": {name: int((~np.isfinite(values)).sum()) for name, values in self.per_map.items()},
            "ms_per_map": 1000 * self.seconds_per_map,
            "training": contender.training.summary(),
        }


@dataclass
class ComparisonResult:
    """Every row on the same maps (``names``, in dataset order), and the figure's maps.

    Args:
        names: the map names.
        rows: one per contender, in table order.
        split: the split compared.
        seed: map ``i`` of a pipeline is sampled with a generator seeded ``seed + i``.
        figure: the figure's maps: ``"truth"``, ``"buildings"``, ``"transmitter"`` and each row's position in
            ``rows`` -> (N, 1, H, W) on [0, 1].
        figure_names: the names of the figure's maps.
    """

    names: list[str]
    rows: list[RowResult]
    split: str
    seed: int
    figure: dict[str | int, torch.Tensor] = field(default_factory=dict)
    figure_names: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The content of ``comparison.json``."""
        return {"split": self.split, "num_maps": len(self.names), "seed": self.seed, "interval": INTERVAL,
                "rows": [row.summary() for row in self.rows]}


def compare_models(
    contenders: list[Contender],
    dataset: Dataset,
    *,
    batch_size: int,
    device: torch.device | str,
    seed: int = 0,
    split: str = "test",
    figure_maps: int = FIGURE_MAPS,
    num_workers: int = 0,
) -> ComparisonResult:
    """Score every contender on every map of ``dataset``, batch by batch, all contenders on each batch.

    Args:
        contenders: the rows, in table order.
        dataset: ``build_dataset(..., with_conditions=True)`` items: ``gain_map`` in [-1, 1], ``buildings``,
            ``transmitter`` and ``name``.
        batch_size: maps per call.
        device: where the models run (calls are synchronised there before and after being timed).
        seed: the seed the pipeline contenders were built with, recorded in the summary.
        split: the split's name, recorded in the summary.
        figure_maps: how many maps, spread evenly over ``dataset``, the figure keeps as each contender predicted
            them during the pass.
        num_workers: data-loader workers.

    Milliseconds per map time each contender's calls only, after :func:`warm_up`.
    """
    warm_up(contenders, dataset, batch_size)
    shown_count = min(figure_maps, len(dataset))
    shown = [index * len(dataset) // shown_count for index in range(shown_count)]
    columns = [{name: [] for name in COLUMNS} for _ in contenders]
    seconds = [0.0 for _ in contenders]
    figure: dict[str | int, list[torch.Tensor]] = {}
    names: list[str] = []
    for batch in batches(dataset, batch_size=batch_size, num_workers=num_workers, description=f"compare {split}"):
        positions = range(len(names), len(names) + len(batch["name"]))
        kept = [row for row, position in enumerate(positions) if position in shown]
        truth = to_unit_range(batch["gain_map"])
        regions = map_regions(batch["buildings"], batch["transmitter"])
        for name, maps in (("truth", truth), ("buildings", batch["buildings"]), ("transmitter", batch["transmitter"])):
            figure.setdefault(name, []).append(maps[kept])
        for row, contender in enumerate(contenders):
            synchronize(device)
            start = time.perf_counter()
            prediction = contender.predict(batch, positions)
            synchronize(device)
            seconds[row] += time.perf_counter() - start
            for name, values in map_scores(prediction, truth, regions).items():
                columns[row][name].append(values.numpy())
            figure.setdefault(row, []).append(prediction[kept])
        names.extend(batch["name"])
    rows = [
        RowResult(contender, {name: np.concatenate(values).astype(np.float64) for name, values in columns[row].items()},
                  seconds[row] / len(names))
        for row, contender in enumerate(contenders)
    ]
    return ComparisonResult(names=names, rows=rows, split=split, seed=seed,
                            figure={name: torch.cat(maps) for name, maps in figure.items()},
                            figure_names=[names[index] for index in shown])


def warm_up(contenders: list[Contender], dataset: Dataset, batch_size: int) -> None:
    """One untimed call of each contender on the first maps (kernels chosen, caches filled). A ``ValueError`` there,
    such as maps of another size than a model's, is raised again naming the contender's source."""
    if len(dataset) == 0:
        raise ValueError("the split has no maps; there is nothing to compare")
    first = default_collate([dataset[index] for index in range(min(batch_size, len(dataset)))])
    for contender in contenders:
        try:
            contender.predict(first, range(len(first["name"])))
        except ValueError as error:
            raise ValueError(f"{contender.source or contender.label}: {error}") from None


def map_scores(prediction: torch.Tensor, truth: torch.Tensor,
               regions: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-map ``COLUMNS`` of ``prediction`` against ``truth`` (both on [0, 1]); ``regions`` from
    :func:`map_regions`."""
    scores = reconstruction_metrics(prediction, truth)
    for region, mask in regions.items():
        scores[f"nmse_{region}"] = normalized_mse(prediction, truth, mask)
    return scores


# --- the rows ---------------------------------------------------------------------------------------------------


def train_mean_contender(train_maps: Dataset, *, batch_size: int, num_workers: int = 0) -> Contender:
    """The constant map that is every training map's per-pixel mean (on [0, 1]): what a model that ignores the
    conditions would best predict under squared error."""
    total, count = None, 0
    for batch in batches(train_maps, batch_size=batch_size, num_workers=num_workers, description="train mean"):
        maps = to_unit_range(batch["gain_map"])
        total = maps.sum(dim=0) if total is None else total + maps.sum(dim=0)
        count += len(maps)
    mean_map = total / count

    def predict(batch: dict[str, Any], positions: range) -> torch.Tensor:
        return mean_map.expand(len(positions), *mean_map.shape).clone()

    return Contender("train mean", "train_mean", predict)


def physics_baseline_contender() -> Contender:
    return Contender("physics baseline", "physics_baseline",
                     lambda batch, positions: log_distance_map(batch["buildings"], batch["transmitter"]))


def pipeline_contender(pipeline, label: str, *, source: str, num_inference_steps: int | None,
                       device: torch.device | str, seed: int, training: TrainingTime) -> Contender:
    """A pipeline's samples, map ``i`` drawn with a generator seeded ``seed + i``."""

    def predict(batch: dict[str, Any], positions: range) -> torch.Tensor:
        return generate(pipeline, batch["buildings"], batch["transmitter"], num_inference_steps=num_inference_steps,
                        generators=map_generators(device, seed, positions))

    return Contender(label, "pipeline", predict, source=source, num_inference_steps=num_inference_steps,
                     training=training)


def vae_ceiling_contender(vae: torch.nn.Module, label: str, *, source: str, device: torch.device | str,
                          training: TrainingTime) -> Contender:
    """The true map through ``vae`` and back (posterior mode): what a sampler in its latent space cannot beat."""
    return Contender(label, "vae_ceiling", lambda batch, positions: vae_round_trip(vae, batch["gain_map"], device),
                     source=source, training=training)


# --- folders ----------------------------------------------------------------------------------------------------


@dataclass
class ModelFolder:
    """A folder given on the command line, resolved: ``pipeline`` (a folder with ``model_index.json``) or
    ``vae`` (a first-stage run's ``vae/``), and the run folder around it, whose ``config.yaml`` names the maps."""

    given: str
    kind: str
    model_dir: Path

    @property
    def run_dir(self) -> Path:
        return self.model_dir.parent


def resolve_model_folder(folder: str) -> ModelFolder:
    """A pipeline folder, a second-stage run (its ``pipeline/``) or a first-stage run (its ``vae/``)."""
    path = Path(folder)
    if (path / PIPELINE_INDEX_FILE).is_file():
        return ModelFolder(folder, "pipeline", path)
    if (path / "pipeline" / PIPELINE_INDEX_FILE).is_file():
        return ModelFolder(folder, "pipeline", path / "pipeline")
    if (path / "vae" / CONFIG_FILE).is_file():
        return ModelFolder(folder, "vae", path / "vae")
    raise FileNotFoundError(
        f"{folder}: neither a pipeline folder (with model_index.json) nor a run folder with an exported pipeline/ "
        "or vae/ (a run that has not finished exports nothing)"
    )


def resolve_model_folders(folders: list[str]) -> list[ModelFolder]:
    """:func:`resolve_model_folder` of each; the same model given twice (a run and its ``pipeline/``) is an error."""
    resolved: dict[Path, ModelFolder] = {}
    for given in folders:
        folder = resolve_model_folder(given)
        twin = resolved.setdefault(folder.model_dir.resolve(), folder)
        if twin is not folder:
            raise ValueError(f"{given}: the same model as {twin.given}; give each model once")
    return list(resolved.values())


def maps_of(data: DataConfig) -> dict[str, Any]:
    """The fields of ``data`` that decide which maps a split holds, flattened to dotted keys."""
    flat = _flatten(dataclasses.asdict(data))
    return {key: value for key, value in flat.items() if key not in _NOT_THE_MAPS}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def common_data(folders: list[ModelFolder], config_path: str | None) -> DataConfig:
    """The data config every folder's run was trained on (``config_path`` for all of them when given); a folder
    whose maps differ from the first's is an error naming it and the first key that differs."""
    configs = [(folder, load_data_config(resolve_config(folder.model_dir, config_path))) for folder in folders]
    first_folder, first = configs[0]
    reference = maps_of(first)
    for folder, data in configs[1:]:
        for key, value in maps_of(data).items():
            if value != reference[key]:
                raise ValueError(
                    f"{folder.given}: trained on other maps than {first_folder.given} (data.{key}: {value!r}, not "
                    f"{reference[key]!r}); every model must be scored on the same maps"
                )
    return first


def run_wall_time(run_dir: Path) -> float | None:
    """``wall_time_s`` of a run's ``training_summary.json``, ``None`` when the run did not record one."""
    summary = run_dir / TRAINING_SUMMARY_FILE
    if not summary.is_file():
        return None
    return json.loads(summary.read_text()).get("wall_time_s")


def first_stage_run(run_dir: Path) -> Path | None:
    """The run folder of the VAE a second-stage run was trained on: its ``config.yaml``'s ``vae.path`` (a ``vae/``
    folder), as it was written at training time; ``None`` for a run without one, or a Hub id."""
    config = run_dir / RUN_CONFIG_FILE
    # only this key: the run's other sections follow a schema (a second stage's, a RadioUNet's) this need not know
    vae_path = (read_yaml(config).get("vae") or {}).get("path") if config.is_file() else None
    return Path(vae_path).parent if vae_path and Path(vae_path).is_dir() else None


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A digest of a module's weights: the same VAE reached from two folders is one ceiling row."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def pipeline_steps(pipeline, steps: list[int] | None) -> list[int | None]:
    """The step counts to sample ``pipeline`` at: ``steps``, else its own default; ``[None]`` for a pipeline with
    no scheduler or a one-pass formulation (steps do not apply)."""
    if "scheduler" not in pipeline.components or not formulation_of(pipeline.scheduler).takes_steps:
        return [None]
    return steps or [pipeline.config.get("default_num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS)]


def pipeline_label(pipeline, name: str, steps: int | None) -> str:
    scheduler = pipeline.components.get("scheduler")
    kind = formulation_of(scheduler).name if scheduler is not None else type(pipeline).__name__
    return f"{name} ({kind})" if steps is None else f"{name} ({kind}, {steps} steps)"


# --- the command ------------------------------------------------------------------------------------------------


def run_compare(
    folders: list[str],
    *,
    out: str,
    split: str = "test",
    steps: list[int] | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    config_path: str | None = None,
    overwrite: bool = False,
) -> ComparisonResult:
    """Compare the pipelines and runs in ``folders`` on ``split`` and write ``comparison.md``, ``.json`` and ``.png``
    into ``out`` (each atomically; existing ones are replaced only with ``overwrite``)."""
    if not folders:
        raise ValueError("expected at least one pipeline or run folder")
    for option, value in (("--steps", min(steps or [1])), ("--limit", limit if limit is not None else 1),
                          ("--batch-size", batch_size)):
        if value < 1:
            raise ValueError(f"{option}: {value}; expected an integer >= 1")
    targets = refuse_existing_outputs(Path(out), overwrite)
    resolved = resolve_model_folders(folders)
    data = common_data(resolved, config_path)
    prepare_data(data)
    dataset = unaugmented(build_dataset(data, split, with_conditions=True))
    if limit is not None:
        dataset = spread_subset(dataset, limit)
    with contextlib.ExitStack() as models:
        rows = model_contenders(resolved, steps, device=device, seed=seed, models=models,
                                map_size=dataset[0]["gain_map"].shape[-1])
        train_maps = unaugmented(build_dataset(data, "train"))
        references = [train_mean_contender(train_maps, batch_size=batch_size, num_workers=data.num_workers),
                      physics_baseline_contender()]
        result = compare_models(references + rows, dataset, batch_size=batch_size, device=device, seed=seed,
                                split=split, num_workers=data.num_workers)
    table = format_comparison(result.summary())
    write_atomically(targets["comparison.md"], table + "\n")
    write_atomically(targets["comparison.json"], json.dumps(result.summary(), indent=2, allow_nan=False) + "\n")
    draw_comparison(result, targets["comparison.png"])
    print(table)
    print(f"wrote {', '.join(str(path) for path in targets.values())}")
    return result


def refuse_existing_outputs(out: Path, overwrite: bool) -> dict[str, Path]:
    """The output files in ``out``, once it is clear that none is replaced unasked."""
    targets = {name: out / name for name in OUTPUT_FILES}
    existing = [path for path in targets.values() if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; give --overwrite to replace it, or another --out")
    return targets


def model_contenders(folders: list[ModelFolder], steps: list[int] | None, *, device: str, seed: int,
                     models: contextlib.ExitStack, map_size: int) -> list[Contender]:
    """The rows of ``folders``: each pipeline at each step count, then one VAE ceiling per distinct VAE. Every
    model is moved to ``device`` in eval mode for as long as ``models`` is open."""
    rows, ceilings = [], {}
    for folder in folders:
        if folder.kind == "vae":
            vae = load_vae(folder.model_dir, default_variant(folder.model_dir))
            if vae.config.sample_size != map_size:
                raise ValueError(f"{folder.given}: the VAE is for {vae.config.sample_size}x{vae.config.sample_size} "
                                 f"maps (its sample_size), the split's maps are {map_size}x{map_size}")
            ceilings.setdefault(weights_fingerprint(vae), (vae, folder, TrainingTime(run_wall_time(folder.run_dir))))
            continue
        pipeline = load_pipeline(folder.model_dir)
        pipeline.set_progress_bar_config(disable=True)
        models.enter_context(pipeline_inference(pipeline, device))
        first_stage = first_stage_run(folder.run_dir)
        first_stage_s = run_wall_time(first_stage) if first_stage else None
        training = TrainingTime(run_wall_time(folder.run_dir), first_stage_s,
                                needs_first_stage=getattr(pipeline, "vae", None) is not None)
        for count in pipeline_steps(pipeline, steps):
            rows.append(pipeline_contender(pipeline, pipeline_label(pipeline, folder.given, count),
                                           source=folder.given, num_inference_steps=count, device=device, seed=seed,
                                           training=training))
        if getattr(pipeline, "vae", None) is not None:
            ceilings.setdefault(weights_fingerprint(pipeline.vae),
                                (pipeline.vae, folder, TrainingTime(first_stage_s)))
    for vae, folder, training in ceilings.values():
        models.enter_context(inference(vae, device))
        rows.append(vae_ceiling_contender(vae, f"VAE ceiling ({folder.given})", source=folder.given, device=device,
                                          training=training))
    return rows


# --- the table and the figure -----------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _statistic(row: dict[str, Any], name: str, interval: bool) -> str:
    stats, non_finite = row["metrics"][name], row["non_finite"][name]
    if stats["mean"] is None:
        return "∞" if name == "psnr" and non_finite else "—"
    text = f"{stats['mean']:.4g}"
    if interval and stats["ci95"] is not None:
        text += f" [{stats['ci95'][0]:.4g}, {stats['ci95'][1]:.4g}]"
    if name == "psnr" and non_finite:
        text += f" (+{non_finite} ∞)"
    return text


def format_comparison(summary: dict[str, Any]) -> str:
    """``comparison.json``'s rows as a Markdown table: the four metrics with their intervals, the regions' NMSE,
    training time and milliseconds per map."""
    lines = [
        f"{summary['num_maps']} maps of split {summary['split']!r}, seed {summary['seed']}; [95% CI]: "
        f"{summary['interval']}",
        "",
        "| model | NMSE [95% CI] | RMSE [95% CI] | SSIM [95% CI] | PSNR dB [95% CI] | NMSE LOS | NMSE shadow "
        "| NMSE edge | training | ms/map |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary["rows"]:
        cells = [_statistic(row, name, interval=True) for name in METRIC_NAMES]
        cells += [_statistic(row, f"nmse_{region}", interval=False) for region in REGION_NAMES]
        cells += [TrainingTime.from_summary(row["training"]).cell(), f"{row['ms_per_map']:.3g}"]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_comparison(result: ComparisonResult, path: str | Path) -> Path:
    """The figure's maps in columns; rows: ground truth, buildings with the transmitter, then each row's maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [("ground truth", "truth"), ("buildings + tx", "buildings"),
             *((row.contender.label, index) for index, row in enumerate(result.rows))]
    columns = len(result.figure_names)
    figure, axes = plt.subplots(len(shown), columns, figsize=(2.2 * columns + 1.5, 2.2 * len(shown)),
                                squeeze=False, layout="constrained")
    positions = transmitter_positions(result.figure["transmitter"])
    for row, (label, key) in enumerate(shown):
        maps = result.figure[key]
        for column in range(columns):
            axis = axes[row, column]
            axis.imshow(maps[column, 0].float().numpy(), cmap="gray_r" if row == 1 else "viridis", vmin=0, vmax=1)
            if row == 1:
                axis.plot(positions[column][1], positions[column][0], marker="*", color="red", markersize=9)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(result.figure_names[column], fontsize=8)
            if column == 0:
                # a run folder's label is longer than a map is high: wrap it, paths included
                axis.set_ylabel(textwrap.fill(label, 24, break_long_words=True), fontsize=7)
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    plt.close(figure)
    return write_atomically(path, image.getvalue())
