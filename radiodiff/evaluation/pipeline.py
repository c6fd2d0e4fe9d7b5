"""Evaluation of a pipeline (the second stage's or RadioUNet's): generated maps against the truth, beside reference
rows.

On the same maps, the table holds the model (the pipeline's samples), **the VAE ceiling** (the pipeline's own VAE
round trip of the true map, encode -> posterior mode -> decode: a sampler in its latent space cannot do better; a
pipeline without a VAE, RadioUNet's, has no such row) and **a physics baseline** with no learning
(:func:`~radiodiff.evaluation.baseline.log_distance_map`). The trainers call :func:`evaluate_pipeline` and
:func:`write_pipeline_metrics` at the end of a run; ``radiodiff evaluate`` on a pipeline folder calls them on any
split.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from diffusers import DiffusionPipeline
from torch.utils.data import Dataset

from ..file_names import PIPELINE_INDEX_FILE
from ..pipelines.saved_folders import saved_pipeline_class
from ..schedulers import formulation_of
from .baseline import log_distance_map
from .evaluate import write_summary_and_table
from .gallery import Panel, draw_gallery, gallery_indices
from .inference import batches, inference, load_saved_folder
from .metrics import METRIC_NAMES, reconstruction_metrics, summarize, to_unit_range

# the rows of the table, in the order they are printed and written
ROWS = ("model", "vae_ceiling", "physics_baseline")
ROW_LABELS = {"model": "model", "vae_ceiling": "VAE ceiling", "physics_baseline": "physics baseline"}


@dataclass
class PipelineEvaluationResult:
    """Per-map metrics of the rows on one split, in dataset order, and what sampling cost.

    Args:
        names: the map names (``"12_3"``), one per map.
        per_map: row (``"model"``, ``"vae_ceiling"``, ``"physics_baseline"``) -> metric -> one value per map; a
            pipeline without a VAE has no ``"vae_ceiling"``.
        seconds_per_map: the pipeline's wall-clock time per map (conditions in, decoded map out), warm.
        nfe: model evaluations per generated map (denoiser calls; 1 for RadioUNet).
        num_inference_steps: the sampling steps asked for; None for a pipeline without a scheduler (one pass).
        formulation: the formulation's name (``radiodiff.schedulers.FORMULATIONS``); None for a pipeline without a
            scheduler.
        seed: the seed of map ``i``'s generator is ``seed + i``.
        split: the split evaluated.
        eta: RadioDiff's sampler's share of the posterior noise (its scheduler's ``eta``); None for a formulation
            whose sampler takes no eta.
    """

    names: list[str]
    per_map: dict[str, dict[str, np.ndarray]]
    seconds_per_map: float
    nfe: int
    num_inference_steps: int | None
    formulation: str | None
    seed: int
    split: str = "val"
    eta: float | None = None

    @property
    def num_maps(self) -> int:
        return len(self.names)

    @property
    def rows(self) -> list[str]:
        """The rows measured, in :data:`ROWS`' order."""
        return [row for row in ROWS if row in self.per_map]

    def summary(self) -> dict[str, Any]:
        """The content of ``metrics.json``: per row, every metric's mean, std and 95% interval of the mean; a row
        the pipeline has no means for (the VAE ceiling of a pipeline without a VAE) is null."""
        rows: dict[str, Any] = {row: None for row in ROWS}
        for row in self.rows:
            values = self.per_map[row]
            rows[row] = {
                "metrics": {name: summarize(values[name]) for name in METRIC_NAMES},
                "non_finite": {name: int((~np.isfinite(values[name])).sum()) for name in METRIC_NAMES},
            }
        rows["model"].update(seconds_per_map=self.seconds_per_map, nfe=self.nfe)
        return {
            "split": self.split,
            "num_maps": self.num_maps,
            "formulation": self.formulation,
            "num_inference_steps": self.num_inference_steps,
            "eta": self.eta,
            "seed": self.seed,
            "rows": rows,
        }

    def columns(self) -> dict[str, np.ndarray]:
        """The per-map table: ``<row>_<metric>`` columns."""
        return {f"{row}_{name}": self.per_map[row][name] for row in self.rows for name in METRIC_NAMES}


def refuse_sampling_options(pipeline_dir: str | Path, options: dict[str, Any]) -> None:
    """One ``ValueError`` line for a sampling option (``{"--steps": 5}``; None is not given) set for a saved pipeline
    without a scheduler (RadioUNet's, which maps in one pass), read from its ``model_index.json`` before anything
    loads; a folder without one is left to :func:`load_pipeline` to refuse."""
    index_path = Path(pipeline_dir) / PIPELINE_INDEX_FILE
    if not index_path.is_file() or "scheduler" in json.loads(index_path.read_text()):
        return
    for option, value in options.items():
        if value is not None:
            kind = saved_pipeline_class(pipeline_dir).__name__
            raise ValueError(f"{option}: {pipeline_dir} is a {kind}, which maps in one pass without a sampler; "
                             f"{option} applies to a sampling pipeline (RadioDiffPipeline)")


def load_pipeline(pipeline_dir: str | Path, variant: str | None = None) -> DiffusionPipeline:
    """A saved pipeline folder (``model_index.json`` and its components), safetensors only, never a download;
    loaded with the radiodiff pipeline class its ``model_index.json`` names
    (:func:`~radiodiff.pipelines.saved_folders.saved_pipeline_class`).

    ``variant="ema"`` reads the components' ``*.ema.safetensors`` weights where the folder has them.
    """
    expected = f"expected a saved pipeline folder with {PIPELINE_INDEX_FILE} and its components' safetensors weights"
    if not (Path(pipeline_dir) / PIPELINE_INDEX_FILE).is_file():
        raise FileNotFoundError(f"{pipeline_dir}: no {PIPELINE_INDEX_FILE}; {expected}")
    return load_saved_folder(saved_pipeline_class(pipeline_dir), pipeline_dir, variant, PIPELINE_INDEX_FILE, expected)


@contextlib.contextmanager
def pipeline_inference(pipeline: DiffusionPipeline, device: torch.device | str) -> Iterator[DiffusionPipeline]:
    """Every model of ``pipeline`` on ``device`` in eval mode without gradients (a trainer's modules may be in
    training mode); their modes are restored afterwards."""
    with contextlib.ExitStack() as stack:
        for module in pipeline.components.values():
            if isinstance(module, torch.nn.Module):
                stack.enter_context(inference(module, device))
        yield pipeline


def map_generators(device: torch.device | str, seed: int, indices: range | list[int]) -> list[torch.Generator]:
    """One generator per map, seeded ``seed + index``: a map's sample does not depend on the batch it is in."""
    return [torch.Generator(device=torch.device(device)).manual_seed(seed + index) for index in indices]


def generate(pipeline, buildings: torch.Tensor, transmitter: torch.Tensor, *, num_inference_steps: int | None,
             generators: list[torch.Generator]) -> torch.Tensor:
    """The pipeline's maps of a batch of conditions, float32 (B, 1, H, W) on [0, 1], on the CPU.

    ``num_inference_steps=None`` leaves the steps out of the call, for a pipeline that samples in one pass.
    """
    steps = {} if num_inference_steps is None else {"num_inference_steps": num_inference_steps}
    images = pipeline(buildings, transmitter, generator=generators, output_type="pt", **steps).images
    return images.float().cpu()


def vae_round_trip(vae: torch.nn.Module, gain_map: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """The VAE's reconstruction of ``gain_map`` ([-1, 1]) through its posterior mode, on [0, 1], on the CPU."""
    latent = vae.encode(gain_map.to(device=device, dtype=vae.dtype)).latent_dist.mode()
    return to_unit_range(vae.decode(latent).sample).cpu()


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def evaluate_pipeline(
    pipeline,
    dataset: Dataset,
    *,
    num_inference_steps: int | None,
    batch_size: int,
    device: torch.device | str,
    seed: int = 0,
    split: str = "val",
    num_workers: int = 0,
) -> PipelineEvaluationResult:
    """Generate every map of ``dataset`` and measure it, its VAE round trip (where the pipeline has a VAE) and the
    physics baseline on [0, 1].

    Args:
        pipeline: a :class:`~radiodiff.pipelines.RadioDiffPipeline` or :class:`~radiodiff.pipelines.RadioUNetPipeline`;
            its models are moved to ``device`` and run in eval mode (their training mode is restored afterwards); its
            progress bar is silenced.
        dataset: yields dicts with ``gain_map`` (1, H, W) in [-1, 1], ``buildings`` and ``transmitter``
            (1, H, W) in [0, 1], and ``name`` (``build_dataset(..., with_conditions=True)``).
        num_inference_steps: sampling steps per map; None for a pipeline without a scheduler (one pass).
        batch_size: maps per pipeline call.
        device: where the pipeline runs.
        seed: map ``i`` (in dataset order) is sampled with a generator seeded ``seed + i``, so the numbers do
            not depend on ``batch_size`` beyond floating-point rounding.
        split: the split's name, recorded in the summary.
        num_workers: data-loader workers.

    Seconds per map time the pipeline calls only (synchronised on CUDA), after one untimed warm-up call on
    the first maps; the denoiser evaluations per map are the formulation's (one for a pipeline without a scheduler).
    """
    scheduler = pipeline.components.get("scheduler")
    formulation = formulation_of(scheduler) if scheduler is not None else None
    vae = pipeline.components.get("vae")
    pipeline.set_progress_bar_config(disable=True)
    rows = [row for row in ROWS if row != "vae_ceiling" or vae is not None]
    columns = {row: {name: [] for name in METRIC_NAMES} for row in rows}
    names: list[str] = []
    seconds = 0.0
    with pipeline_inference(pipeline, device):
        warm_up(pipeline, dataset, batch_size, num_inference_steps, device, seed)
        for batch in batches(dataset, batch_size=batch_size, num_workers=num_workers, description=f"evaluate {split}"):
            buildings, transmitter = batch["buildings"], batch["transmitter"]
            generators = map_generators(device, seed, range(len(names), len(names) + len(buildings)))
            synchronize(device)
            start = time.perf_counter()
            generated = generate(pipeline, buildings, transmitter, num_inference_steps=num_inference_steps,
                                 generators=generators)
            synchronize(device)
            seconds += time.perf_counter() - start
            truth = to_unit_range(batch["gain_map"])
            predictions = {"model": generated, "physics_baseline": log_distance_map(buildings, transmitter)}
            if vae is not None:
                predictions["vae_ceiling"] = vae_round_trip(vae, batch["gain_map"], device)
            for row, prediction in predictions.items():
                for name, values in reconstruction_metrics(prediction, truth).items():
                    columns[row][name].append(values.numpy())
            names.extend(batch["name"])
    return PipelineEvaluationResult(
        names=names,
        per_map={row: {name: np.concatenate(values).astype(np.float64) for name, values in metrics.items()}
                 for row, metrics in columns.items()},
        seconds_per_map=seconds / len(names),
        nfe=formulation.function_evaluations(num_inference_steps) if formulation is not None else 1,
        num_inference_steps=num_inference_steps,
        formulation=formulation.name if formulation is not None else None,
        seed=seed,
        split=split,
        eta=scheduler.config.eta if formulation is not None and formulation.takes_eta else None,
    )


def warm_up(pipeline, dataset: Dataset, batch_size: int, num_inference_steps: int | None, device: torch.device | str,
            seed: int) -> None:
    """One untimed pipeline call on the first maps of ``dataset`` (kernels chosen, caches filled)."""
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; there is nothing to evaluate")
    items = [dataset[index] for index in range(min(batch_size, len(dataset)))]
    generate(pipeline, torch.stack([item["buildings"] for item in items]),
             torch.stack([item["transmitter"] for item in items]), num_inference_steps=num_inference_steps,
             generators=map_generators(device, seed, range(len(items))))


def write_pipeline_metrics(result: PipelineEvaluationResult, output_dir_or_file: str | Path) -> Path:
    """Write ``metrics.json`` (:meth:`PipelineEvaluationResult.summary`) and ``per_image.csv`` (every row's
    metrics per map) into ``output_dir_or_file`` (a folder, or a ``.json`` path with the CSV beside it), each
    atomically. Returns the JSON's path. Whether an existing file may be replaced is the caller's decision."""
    return write_summary_and_table(result.summary(), result.names, result.columns(), output_dir_or_file)


def format_pipeline_summary(summary: dict[str, Any]) -> str:
    """The rows of a pipeline's ``metrics.json`` as a Markdown table (means, and NMSE's 95% interval)."""
    if summary["formulation"] is None:
        sampling = "one pass (no sampler)"
    else:
        sampling = (f"{summary['formulation']} formulation, {summary['num_inference_steps']} steps"
                    f"{'' if summary.get('eta') is None else ', eta ' + format(summary['eta'], 'g')}")
    lines = [
        f"{summary['num_maps']} maps of split {summary['split']!r}, {sampling}, seed {summary['seed']}",
        "",
        "| | NMSE | NMSE 95% CI | RMSE | SSIM | PSNR (dB) | s/map | NFE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ROWS:
        stats = summary["rows"].get(row)
        if stats is None:
            continue
        metrics = stats["metrics"]

        def mean(name: str) -> str:
            return "—" if metrics[name]["mean"] is None else f"{metrics[name]['mean']:.4g}"

        interval = metrics["nmse"]["ci95"]
        interval = "—" if interval is None else f"[{interval[0]:.4g}, {interval[1]:.4g}]"
        speed = f"{stats['seconds_per_map']:.3g}" if "seconds_per_map" in stats else "—"
        nfe = str(stats["nfe"]) if "nfe" in stats else "—"
        lines.append(f"| {ROW_LABELS[row]} | {mean('nmse')} | {interval} | {mean('rmse')} | {mean('ssim')} "
                     f"| {mean('psnr')} | {speed} | {nfe} |")
    return "\n".join(lines)


def save_pipeline_gallery(
    pipeline,
    dataset: Dataset,
    result: PipelineEvaluationResult,
    path: str | Path,
    *,
    count: int,
    device: torch.device | str,
) -> Path:
    """Draw buildings, transmitter, truth, generated map and |error| (all on [0, 1]) for the ``count`` best,
    median and worst maps by the model's NMSE into the PNG ``path``.

    The maps are generated again with the generators they were evaluated with (``seed + index``), so they are
    the evaluated samples.
    """
    rows = [(group, index) for group, indices in gallery_indices(result.per_map["model"]["nmse"], count).items()
            for index in indices]
    items = [dataset[index] for _, index in rows]
    buildings = torch.stack([item["buildings"] for item in items])
    transmitter = torch.stack([item["transmitter"] for item in items])
    with pipeline_inference(pipeline, device):
        generated = generate(pipeline, buildings, transmitter, num_inference_steps=result.num_inference_steps,
                             generators=[map_generators(device, result.seed, [index])[0] for _, index in rows])
    truth = to_unit_range(torch.stack([item["gain_map"] for item in items]))
    # a dilated transmitter: one pixel of a 256x256 map disappears when the figure is drawn at 3 inches
    marker = torch.nn.functional.max_pool2d(transmitter, kernel_size=7, stride=1, padding=3)
    titles = [f"{group} {result.names[index]} (NMSE {result.per_map['model']['nmse'][index]:.2e})"
              for group, index in rows]
    return draw_gallery(path, titles, [
        Panel("buildings", buildings), Panel("transmitter", marker), Panel("ground truth", truth),
        Panel("generated", generated), Panel("|error|", (generated - truth).abs(), colormap="magma", colorbar=True),
    ])
