"""The model cards of a training run (``output_dir/README.md``): a first-stage run holds ``vae/`` (the VAE card); a
second-stage run holds ``pipeline/``, the whole diffusers pipeline, its VAE included (the pipeline card); a RadioUNet
run holds ``pipeline/`` too, a RadioUNetPipeline (its own card: a supervised CNN, no VAE, no diffusion).

Everything here reads the files a run leaves in its output folder (``config.yaml``, ``vae/``,
``discriminator/``, ``samples/``, ``metrics.json``, ``training_summary.json``); nothing imports the trainer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusers.utils.dynamic_modules_utils import get_relative_imports
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from safetensors import safe_open

from ..config import ConfigError, DataConfig, VAEConfig, load_data_config, load_vae_config, read_yaml
from ..file_names import (
    CARD_FILE,
    CONFIG_FILE,
    EMA_WEIGHTS_FILE,
    METRICS_FILE,
    PIPELINE_INDEX_FILE,
    RUN_CONFIG_FILE,
    TRAINING_SUMMARY_FILE,
    WEIGHTS_FILE,
    find_samples,
)
from ..file_writing import write_atomically
from ..models import downsampling_factor
from ..pipelines import RadioUNetPipeline
from ..pipelines.pipeline_radiodiff import DEFAULT_NUM_INFERENCE_STEPS
from ..pipelines.saved_folders import saved_pipeline_class
from ..schedulers import Formulation, formulation_of

TEMPLATES = Path(__file__).parent.parent / "templates"
VAE_CARD_TEMPLATE = TEMPLATES / "vae_model_card.md"
VAE_CARD_TAGS = ["radio-map", "vae", "radiodiff", "autoencoderkl", "latent-diffusion", "pathloss"]
LICENSE = "mit"
# how each metric of metrics.json is shown, and which way is better
METRICS = {
    "nmse": ("NMSE", "lower"),
    "rmse": ("RMSE", "lower"),
    "ssim": ("SSIM", "higher"),
    "psnr": ("PSNR (dB)", "higher"),
}
PLACEHOLDER_REPO_ID = "USER/NAME"


class HubError(ValueError):
    """A card or a push that cannot be made: a folder that is not a training run, no token, offline mode."""


@dataclass
class VAETrainingRun:
    """What the VAE card says about one first-stage run, as read from its output folder."""

    output_dir: Path
    vae_config: dict[str, Any]
    vae_parameters: int
    has_ema_weights: bool
    config: VAEConfig | None
    summary: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    sample: str | None

    @property
    def downsampling_factor(self) -> int:
        return downsampling_factor(self.vae_config["block_out_channels"])

    @property
    def map_size(self) -> int:
        """The side of the maps the VAE was trained on."""
        if self.config is not None and self.config.data.resolution is not None:
            return self.config.data.resolution
        if self.config is not None and self.config.data.source == "synthetic":
            return self.config.data.synthetic.size
        return int(self.vae_config.get("sample_size", 256))

    @property
    def latent_shape(self) -> list[int]:
        if self.evaluation and "latent" in self.evaluation:
            return list(self.evaluation["latent"]["shape"])
        side = self.map_size // self.downsampling_factor
        return [self.vae_config["latent_channels"], side, side]


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise HubError(f"{path}: not valid JSON ({error})") from None


def parameters_by_module(weights_file: Path) -> dict[str, int]:
    """The number of weights stored in a safetensors file per top-level module (the name's first part), read from
    its header."""
    counts: dict[str, int] = {}
    with safe_open(weights_file, framework="pt") as weights:
        for name in weights.keys():
            size = 1
            for dim in weights.get_slice(name).get_shape():
                size *= dim
            module = name.split(".")[0]
            counts[module] = counts.get(module, 0) + size
    return counts


def count_parameters(weights_file: Path) -> int:
    """The number of weights stored in a safetensors file, read from its header."""
    return sum(parameters_by_module(weights_file).values())


def latest_sample(output_dir: Path) -> str | None:
    """``samples/sample-<milestone>.png`` of the highest milestone, relative to ``output_dir``."""
    samples = find_samples([output_dir / "samples"])
    return samples[-1][1].relative_to(output_dir).as_posix() if samples else None


def read_vae_training_run(output_dir: str | Path) -> VAETrainingRun:
    """Collect what the card needs from ``output_dir``; only ``vae/`` is required."""
    output_dir = Path(output_dir)
    vae_config = _read_json(output_dir / "vae" / CONFIG_FILE)
    weights = output_dir / "vae" / WEIGHTS_FILE
    if vae_config is None or not weights.is_file():
        raise HubError(f"{output_dir}: expected a training run with vae/{CONFIG_FILE} and vae/{WEIGHTS_FILE}")
    config_file = output_dir / RUN_CONFIG_FILE
    return VAETrainingRun(
        output_dir=output_dir,
        vae_config=vae_config,
        vae_parameters=count_parameters(weights),
        has_ema_weights=(output_dir / "vae" / EMA_WEIGHTS_FILE).is_file(),
        config=load_vae_config(config_file) if config_file.is_file() else None,
        summary=_read_json(output_dir / TRAINING_SUMMARY_FILE),
        evaluation=_read_json(output_dir / METRICS_FILE),
        sample=latest_sample(output_dir),
    )


def _hub_dataset_id(data: DataConfig) -> str | None:
    """The Hub id of the training data, when the run read a Hub dataset rather than local files."""
    root = data.root or ""
    if data.source == "datasets" and re.fullmatch(r"[\w.-]+/[\w.-]+", root) and not Path(root).expanduser().exists():
        return root
    return None


def describe_data(data: DataConfig | None) -> tuple[str, str]:
    """``(dataset_type, description)`` of the training maps."""
    if data is None:
        return "unknown", "maps of an unrecorded source (the run has no config.yaml)"
    if data.source == "synthetic":
        synthetic = data.synthetic
        return "synthetic-radio-maps", (
            f"synthetic RadioMapSeer-like maps made by `radiodiff` ({synthetic.maps} city layouts x "
            f"{synthetic.tx_per_map} transmitters, {synthetic.size}x{synthetic.size}, seed {synthetic.seed})"
        )
    if data.source == "radiomapseer":
        return "radiomapseer", (
            f"RadioMapSeer {data.simulation} gain maps (split protocol `{data.protocol}`: "
            + ("no city in more than one split)" if data.protocol == "leakfree" else "the original's split)")
        )
    dataset_id = _hub_dataset_id(data)
    # a local folder's path is machine-local: it names the user and their disks, so the card never shows it
    return (dataset_id, f"the dataset `{dataset_id}`") if dataset_id else ("custom", "a local dataset")


def _metric_results(metrics: dict[str, Any], data: DataConfig | None, split: str | None, task_name: str,
                    qualifier: str) -> list[EvalResult]:
    """``model-index`` entries of the defined means of ``metrics`` (a ``metrics.json`` ``metrics`` mapping)."""
    dataset_type, _ = describe_data(data)
    return [
        EvalResult(
            task_type="image-to-image",
            task_name=task_name,
            dataset_type=dataset_type,
            dataset_name=dataset_type.replace("-", " "),
            dataset_split=split,
            metric_type=name,
            metric_value=round(float(values["mean"]), 6),
            metric_name=f"{METRICS[name][0]} ({qualifier})",
        )
        for name, values in metrics.items()
        if name in METRICS and values.get("mean") is not None
    ]


def _vae_eval_results(run: VAETrainingRun) -> list[EvalResult] | None:
    if not run.evaluation:
        return None
    return _metric_results(run.evaluation["metrics"], run.config.data if run.config else None,
                           run.evaluation.get("split"), "Radio map reconstruction",
                           f"{run.evaluation.get('variant') or 'plain'} weights")


def vae_model_card_data(run: VAETrainingRun, model_name: str) -> ModelCardData:
    """The card's YAML metadata: library, tags, license, data and ``model-index`` when evaluated."""
    data = run.config.data if run.config else None
    dataset_id = _hub_dataset_id(data) if data else None
    tags = VAE_CARD_TAGS + ([data.source] if data and data.source != "datasets" else [])
    return ModelCardData(
        library_name="diffusers",
        license=LICENSE,
        tags=tags,
        datasets=[dataset_id] if dataset_id else None,
        metrics=[name for name in METRICS if run.evaluation and name in run.evaluation["metrics"]] or None,
        model_name=model_name,
        eval_results=_vae_eval_results(run),
    )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _vae_training_rows(run: VAETrainingRun) -> list[tuple[str, str]]:
    """The training setup as (setting, value) rows: config highlights, then what the run measured."""
    rows: list[tuple[str, str]] = []
    if run.config is not None:
        train, loss = run.config.train, run.config.loss
        rows += [
            ("batch size x accumulation", f"{train.batch_size} x {train.gradient_accumulation_steps}"),
            ("learning rate", f"{train.lr:g} ({train.lr_schedule}, min {train.min_lr:g}), "
             + ("Muon (hidden weights) + " if train.optimizer == "muon" else "")
             + f"AdamW betas ({train.adam_beta1:g}, {train.adam_beta2:g})"),
            ("reconstruction loss", (f"{loss.l1_weight:g} x L1 + L2" if loss.l1_weight else "L2")
             + (" of the map clamped to [-1, 1]" if loss.clamp_reconstruction else "")),
            ("gradient clipping", f"norm {train.max_grad_norm:g}" if train.max_grad_norm else "off"),
            ("KL weight", f"{loss.kl_weight:g}"),
            ("GAN", f"{loss.disc_loss} loss, weight {loss.disc_weight:g}, from step {loss.disc_start}"),
            ("perceptual weight", f"{loss.perceptual_weight:g}"),
            ("EMA", f"decay {train.ema_decay:g} every {train.ema_update_every} steps" if train.use_ema else "off"),
            # the summary holds what `auto` resolved to on the machine that trained
            ("mixed precision", (run.summary or {}).get("mixed_precision", train.mixed_precision)),
        ]
    return rows + _summary_rows(run.summary or {})


def _summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """What a run measured about itself (``training_summary.json``) as (setting, value) rows."""
    rows: list[tuple[str, str]] = []
    if "steps" in summary:
        rows.append(("steps", f"{summary['steps']:,} of {summary.get('max_steps', summary['steps']):,}"))
    if "wall_time_s" in summary:
        rows.append(("training time", _duration(summary["wall_time_s"])))
    if "hardware" in summary:
        processes = summary.get("num_processes", 1)
        rows.append(("hardware", summary["hardware"] + (f", {processes} processes" if processes > 1 else "")))
    if "images_per_sec" in summary:
        rows.append(("throughput", f"{summary['images_per_sec']:.1f} maps/s"))
    return rows


def _vae_evaluation_rows(run: VAETrainingRun) -> list[tuple[str, str, str, str]]:
    """(metric, mean ± std, 95% interval, better) rows of ``metrics.json``."""
    if not run.evaluation:
        return []
    rows = []
    for name, values in run.evaluation["metrics"].items():
        label, better = METRICS.get(name, (name, ""))
        # metrics.json writes null where the maps cannot define a value: an interval from one map, or the PSNR
        # when every map is a perfect reconstruction
        if values.get("mean") is None:
            rows.append((label, "undefined", "", better))
            continue
        low, high = values.get("ci95") or (None, None)
        interval = f"[{low:.4g}, {high:.4g}]" if low is not None else ""
        rows.append((label, f"{values['mean']:.4g} ± {values.get('std', 0.0):.2g}", interval, better))
    return rows


def _train_subset_sentence(run: VAETrainingRun) -> str | None:
    """The training-subset figures of ``metrics.json`` beside validation: how much the model memorises."""
    block = (run.evaluation or {}).get("train_subset")
    if not block or block["metrics"]["psnr"]["mean"] is None or block["gap"]["psnr"] is None:
        return None
    means = {name: stats["mean"] for name, stats in block["metrics"].items()}
    return (
        f"On {block['num_maps']} maps of the training split (spread over it, not augmented) the same weights reach "
        f"PSNR {means['psnr']:.2f} dB, NMSE {means['nmse']:.4g} and SSIM {means['ssim']:.3f}: "
        f"{block['gap']['psnr']:+.2f} dB of PSNR against `{run.evaluation['split']}`. A large positive gap means "
        "the model memorises its training maps rather than learning radio maps in general."
    )


def render_vae_model_card(output_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The model card of the run in ``output_dir``; loading examples name ``repo_id`` (or the config's)."""
    run = read_vae_training_run(output_dir)
    repo_id = repo_id or (run.config.train.hub_repo_id if run.config else None)
    model_name = repo_id.split("/")[-1] if repo_id else run.output_dir.resolve().name
    _, data_description = describe_data(run.config.data if run.config else None)
    if run.config and run.config.data.augment == "dihedral":
        data_description += ", each training map also under the 7 other flips and quarter turns of the square"
    parameters = (run.summary or {}).get("parameters", {})
    return ModelCard.from_template(
        vae_model_card_data(run, model_name),
        template_path=str(VAE_CARD_TEMPLATE),
        model_name=model_name,
        repo_id=repo_id or PLACEHOLDER_REPO_ID,
        vae=run.vae_config,
        vae_parameters=f"{run.vae_parameters:,}",
        discriminator_parameters=f"{parameters['discriminator']:,}" if "discriminator" in parameters else None,
        downsampling_factor=run.downsampling_factor,
        map_size=run.map_size,
        latent_shape="x".join(map(str, run.latent_shape)),
        compression_factor=(run.evaluation or {}).get("latent", {}).get("compression_factor"),
        has_ema_weights=run.has_ema_weights,
        data_source=run.config.data.source if run.config else None,
        data_description=data_description,
        training_rows=_vae_training_rows(run),
        evaluation=run.evaluation,
        evaluation_rows=_vae_evaluation_rows(run),
        train_subset_sentence=_train_subset_sentence(run),
        sample=run.sample,
    )


def write_vae_model_card(output_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write the run's card to ``output_dir/README.md`` (replaced atomically) and return that path."""
    return write_atomically(Path(output_dir) / CARD_FILE, str(render_vae_model_card(output_dir, repo_id)))


# --- the second stage: a run whose output folder holds pipeline/ ---------------------------------------------------

PIPELINE_DIR = "pipeline"
PIPELINE_CARD_TEMPLATE = TEMPLATES / "pipeline_model_card.md"
PIPELINE_CARD_TAGS = ["radio-map", "radiodiff", "latent-diffusion", "pathloss", "image-to-image"]
# the reference rows of a pipeline's metrics.json; model-index holds the model's row only
PIPELINE_ROWS = {"model": "model", "vae_ceiling": "VAE ceiling (its own round trip)",
                 "physics_baseline": "physics baseline (log-distance, no learning)"}


def is_pipeline_run(output_dir: str | Path) -> bool:
    return (Path(output_dir) / PIPELINE_DIR / PIPELINE_INDEX_FILE).is_file()


@dataclass
class ExportedRun:
    """What every pipeline card says about a run folder with ``pipeline/``, besides the pipeline's own components
    (:func:`_run_record`), and the parameter count of each trained model."""

    output_dir: Path
    carries_code: bool
    parameters: dict[str, int]
    data: DataConfig | None
    train: dict[str, Any]
    summary: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    sample: str | None


@dataclass
class PipelineRun(ExportedRun):
    """What a second-stage card says, as read from ``output_dir`` (``pipeline/`` is required)."""

    formulation: Formulation
    scheduler_class: str
    default_steps: int
    vae_config: dict[str, Any] | None  # None: a pixel-space denoiser
    unet_config: dict[str, Any]
    encoder_config: dict[str, Any]
    unet_class: str

    @property
    def map_size(self) -> int:
        return int(self.unet_config["sample_size"]) * int(self.encoder_config["downsampling_factor"])

    @property
    def latent_shape(self) -> list[int]:
        side = int(self.unet_config["sample_size"])
        if self.vae_config is None:
            return [self.unet_config["out_channels"] // self.formulation.outputs_per_latent_channel(), side, side]
        return [self.vae_config["latent_channels"], side, side]


def _component(pipeline_dir: Path, name: str) -> tuple[dict[str, Any], int]:
    """A component's config and parameter count; its weights must be safetensors."""
    config = _read_json(pipeline_dir / name / CONFIG_FILE)
    weights = pipeline_dir / name / WEIGHTS_FILE
    if config is None or not weights.is_file():
        raise HubError(f"{pipeline_dir}: expected {name}/{CONFIG_FILE} and {name}/{WEIGHTS_FILE}")
    return config, count_parameters(weights)


def _run_settings(output_dir: Path) -> tuple[DataConfig | None, dict[str, Any]]:
    """The data section and the raw ``train`` section of the run's ``config.yaml`` (either stage's schema)."""
    config_file = output_dir / RUN_CONFIG_FILE
    if not config_file.is_file():
        return None, {}
    try:
        return load_data_config(config_file), dict(read_yaml(config_file).get("train") or {})
    except ConfigError as error:
        raise HubError(str(error)) from None


def _formulation(output_dir: Path, scheduler_class: str) -> Formulation:
    try:
        return formulation_of(scheduler_class)
    except ValueError as error:
        raise HubError(f"{output_dir}: {PIPELINE_DIR}/model_index.json names the {error}") from None


def read_pipeline_run(output_dir: str | Path) -> PipelineRun:
    """Collect what the second stage's card needs from ``output_dir``; only ``pipeline/`` is required."""
    output_dir = Path(output_dir)
    pipeline_dir = output_dir / PIPELINE_DIR
    index = _read_json(pipeline_dir / PIPELINE_INDEX_FILE)
    if index is None:
        raise HubError(f"{output_dir}: expected a second-stage run with {PIPELINE_DIR}/{PIPELINE_INDEX_FILE}")
    names = ("unet", "condition_encoder") + (("vae",) if (index.get("vae") or [None])[0] else ())
    components = {name: _component(pipeline_dir, name) for name in names}
    scheduler_class = index["scheduler"][1]
    return PipelineRun(
        formulation=_formulation(output_dir, scheduler_class),
        scheduler_class=scheduler_class,
        default_steps=index.get("default_num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS),
        vae_config=components["vae"][0] if "vae" in components else None,
        unet_config=components["unet"][0],
        unet_class=index["unet"][1],
        encoder_config=components["condition_encoder"][0],
        parameters={name: parameters for name, (_, parameters) in components.items()},
        **_run_record(output_dir),
    )


def _run_record(output_dir: Path) -> dict[str, Any]:
    """What every pipeline card reads from a run folder besides the pipeline's components: whether the pipeline
    carries its code, the run's settings, its summary, evaluation and latest sample."""
    data, train = _run_settings(output_dir)
    return dict(
        output_dir=output_dir,
        carries_code=bool(shipped_code(output_dir / PIPELINE_DIR)),
        data=data,
        train=train,
        summary=_read_json(output_dir / TRAINING_SUMMARY_FILE),
        evaluation=_read_json(output_dir / METRICS_FILE),
        sample=latest_sample(output_dir),
    )


def _pipeline_card_data(run: ExportedRun, model_name: str, tags: list[str]) -> ModelCardData:
    """A pipeline card's YAML metadata: library, task, tags (the data source's added), data, ``model-index``."""
    return ModelCardData(
        library_name="diffusers",
        pipeline_tag="image-to-image",
        license=LICENSE,
        tags=tags + ([run.data.source] if run.data and run.data.source != "datasets" else []),
        datasets=[describe_data(run.data)[0]] if run.data and _hub_dataset_id(run.data) else None,
        metrics=[name for name in METRICS if _pipeline_eval_results(run)] or None,
        model_name=model_name,
        eval_results=_pipeline_eval_results(run),
    )


def _pipeline_eval_results(run: ExportedRun) -> list[EvalResult] | None:
    rows = (run.evaluation or {}).get("rows")
    if not rows:
        return None
    steps = run.evaluation.get("num_inference_steps")
    return _metric_results(rows["model"]["metrics"], run.data, run.evaluation.get("split"), "Radio map construction",
                           "one pass" if steps is None else f"{steps} steps")


def _pipeline_evaluation_rows(run: ExportedRun) -> list[dict[str, str]]:
    """One row per line of the table (model, VAE ceiling, physics baseline): label and formatted metrics; a row
    the run has no means for (the VAE ceiling of a pipeline without a VAE) is left out."""
    rows = (run.evaluation or {}).get("rows") or {}
    table = []
    for key, label in PIPELINE_ROWS.items():
        if not rows.get(key):
            continue
        metrics = rows[key]["metrics"]
        cells = {"label": label}
        for name in METRICS:
            stats = metrics.get(name) or {}
            if stats.get("mean") is None:
                cells[name] = "undefined"
                continue
            interval = stats.get("ci95")
            cells[name] = f"{stats['mean']:.4g}" + (f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else "")
        cells["speed"] = f"{rows[key]['seconds_per_map']:.3g}" if "seconds_per_map" in rows[key] else "—"
        cells["nfe"] = str(rows[key]["nfe"]) if "nfe" in rows[key] else "—"
        table.append(cells)
    return table


def _pipeline_training_rows(run: ExportedRun) -> list[tuple[str, str]]:
    train = run.train
    rows = [
        (setting, str(train[key]))
        for key, setting in (("max_steps", "steps asked"), ("batch_size", "batch size"), ("lr", "learning rate"),
                             ("lr_schedule", "learning-rate schedule"), ("optimizer", "optimizer"),
                             ("ema_decay", "EMA decay"))
        if key in train
    ]
    return rows + _summary_rows(run.summary or {})


def render_pipeline_model_card(output_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The model card of the second-stage run in ``output_dir`` (or of a RadioUNet run: its own card); loading
    examples name ``repo_id``."""
    if is_radiounet_run(output_dir):
        return render_radiounet_model_card(output_dir, repo_id)
    run = read_pipeline_run(output_dir)
    repo_id = repo_id or run.train.get("hub_repo_id")
    model_name = repo_id.split("/")[-1] if repo_id else run.output_dir.resolve().name
    _, data_description = describe_data(run.data)
    tags = PIPELINE_CARD_TAGS if run.vae_config else [tag.replace("latent-", "pixel-") for tag in PIPELINE_CARD_TAGS]
    card_data = _pipeline_card_data(run, model_name, tags + [run.formulation.name.replace("_", "-")])
    return ModelCard.from_template(
        card_data,
        template_path=str(PIPELINE_CARD_TEMPLATE),
        model_name=model_name,
        repo_id=repo_id or PLACEHOLDER_REPO_ID,
        formulation_title=run.formulation.title,
        scheduler_class=run.scheduler_class,
        default_steps=run.default_steps,
        carries_code=run.carries_code,
        vae=run.vae_config,
        unet=run.unet_config,
        unet_description=(f"a diffusers `{run.unet_class}`" if run.unet_class == "UNet2DModel"
                          else f"`radiodiff.models.{run.unet_class}`"),
        encoder=run.encoder_config,
        parameters={name: f"{count:,}" for name, count in run.parameters.items()},
        map_size=run.map_size,
        latent_shape="x".join(map(str, run.latent_shape)),
        data_source=run.data.source if run.data else None,
        data_description=data_description,
        training_rows=_pipeline_training_rows(run),
        evaluation=run.evaluation,
        evaluation_rows=_pipeline_evaluation_rows(run),
        sample=run.sample,
    )


def write_pipeline_model_card(output_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write the card of the second-stage or RadioUNet run to ``output_dir/README.md`` (replaced atomically) and
    return that path.

    The trainers call it at the end of a run; ``radiodiff card`` calls it for a folder with ``pipeline/``."""
    return write_atomically(Path(output_dir) / CARD_FILE, str(render_pipeline_model_card(output_dir, repo_id)))


def shipped_code(pipeline_dir: Path) -> list[str]:
    """The code files that ``model_index.json`` names and the folder holds, as diffusers fetches them for
    ``trust_remote_code``: ``<_class_name[0]>.py`` at the root with the modules it imports from beside it,
    ``<component>/<entry[0]>.py`` in a component's folder."""
    index = _read_json(pipeline_dir / PIPELINE_INDEX_FILE) or {}
    pipeline_class = index.get("_class_name")
    named = [f"{pipeline_class[0]}.py"] if isinstance(pipeline_class, list) else []
    if named and (pipeline_dir / named[0]).is_file():
        named += [f"{module}.py" for module in get_relative_imports(pipeline_dir / named[0])]
    named += [f"{name}/{entry[0]}.py" for name, entry in index.items()
              if not name.startswith("_") and isinstance(entry, list) and isinstance(entry[0], str)]
    return [name for name in named if (pipeline_dir / name).is_file()]


# --- RadioUNet: a run whose pipeline/ holds a RadioUNetPipeline ----------------------------------------------------

RADIOUNET_CARD_TEMPLATE = TEMPLATES / "radiounet_model_card.md"
RADIOUNET_CARD_TAGS = ["radio-map", "radiounet", "unet", "pathloss", "image-to-image", "baseline"]


def is_radiounet_run(output_dir: str | Path) -> bool:
    """A run whose ``pipeline/model_index.json`` names a RadioUNetPipeline."""
    pipeline_dir = Path(output_dir) / PIPELINE_DIR
    if not (pipeline_dir / PIPELINE_INDEX_FILE).is_file():
        return False
    try:
        return saved_pipeline_class(pipeline_dir) is RadioUNetPipeline
    except (ValueError, json.JSONDecodeError):
        return False


@dataclass
class RadioUNetRun(ExportedRun):
    """What a RadioUNet card says, as read from ``output_dir`` (``pipeline/`` is required)."""

    unet_config: dict[str, Any]

    @property
    def is_cascade(self) -> bool:
        return self.unet_config.get("second_down_channels") is not None


def read_radiounet_run(output_dir: str | Path) -> RadioUNetRun:
    """Collect what the RadioUNet card needs from ``output_dir``; only ``pipeline/`` is required."""
    output_dir = Path(output_dir)
    pipeline_dir = output_dir / PIPELINE_DIR
    unet_config = _read_json(pipeline_dir / "unet" / CONFIG_FILE)
    weights = pipeline_dir / "unet" / WEIGHTS_FILE
    if unet_config is None or not weights.is_file():
        raise HubError(f"{pipeline_dir}: expected unet/{CONFIG_FILE} and unet/{WEIGHTS_FILE}")
    return RadioUNetRun(
        unet_config=unet_config,
        parameters=parameters_by_module(weights),  # first_unet, second_unet
        **_run_record(output_dir),
    )


def render_radiounet_model_card(output_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The model card of the RadioUNet run in ``output_dir``; loading examples name ``repo_id``."""
    run = read_radiounet_run(output_dir)
    repo_id = repo_id or run.train.get("hub_repo_id")
    model_name = repo_id.split("/")[-1] if repo_id else run.output_dir.resolve().name
    _, data_description = describe_data(run.data)
    card_data = _pipeline_card_data(run, model_name, RADIOUNET_CARD_TAGS)
    training_rows = _pipeline_training_rows(run)
    if run.is_cascade and run.train.get("first_unet_steps") is not None:
        training_rows.insert(1, ("steps of the first U-Net (phase 1)", str(run.train["first_unet_steps"])))
    return ModelCard.from_template(
        card_data,
        template_path=str(RADIOUNET_CARD_TEMPLATE),
        model_name=model_name,
        repo_id=repo_id or PLACEHOLDER_REPO_ID,
        carries_code=run.carries_code,
        is_cascade=run.is_cascade,
        parameters={name: f"{count:,}" for name, count in run.parameters.items()},
        total_parameters=f"{sum(run.parameters.values()):,}",
        map_size=run.unet_config["sample_size"],
        data_source=run.data.source if run.data else None,
        data_description=data_description,
        training_rows=training_rows,
        evaluation=run.evaluation,
        evaluation_rows=_pipeline_evaluation_rows(run),
        sample=run.sample,
    )
