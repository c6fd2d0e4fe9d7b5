"""Publishing a training run of either stage: its model card (``output_dir/README.md``) and its upload to the
Hugging Face Hub. A first-stage run holds ``vae/``; a second-stage run holds ``pipeline/`` (the whole diffusers
pipeline, its VAE included).

Everything here reads the files a run leaves in its output folder (``config.yaml``, ``vae/``,
``discriminator/``, ``samples/``, ``metrics.json``, ``training_summary.json``); nothing imports the trainer.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import filter_repo_objects, validate_repo_id
from safetensors import safe_open

from .config import Config, ConfigError, DataConfig, load_config, load_data_config, read_yaml
from .files import find_samples, write_atomically
from .models import downsampling_factor
from .pipelines.pipeline_radiodiff import DEFAULT_NUM_INFERENCE_STEPS
from .schedulers import Formulation, formulation_of

CARD_TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
CARD_TAGS = ["radio-map", "vae", "radiodiff", "autoencoderkl", "latent-diffusion", "pathloss"]
LICENSE = "mit"
CARD_FILE = "README.md"
# what a push uploads besides the card; checkpoints/ (optimizer states), logs/ and config.yaml (local paths) never match
UPLOAD_PATTERNS = [
    "vae/config.json",
    "vae/*.safetensors",
    "samples/*.png",
    "metrics.json",
    "training_summary.json",
]
DISCRIMINATOR_PATTERNS = ["discriminator/config.json", "discriminator/*.safetensors"]
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
EMA_WEIGHTS_FILE = "diffusion_pytorch_model.ema.safetensors"
# how each metric of metrics.json is shown, and which way is better
METRICS = {
    "nmse": ("NMSE", "lower"),
    "rmse": ("RMSE", "lower"),
    "ssim": ("SSIM", "higher"),
    "psnr": ("PSNR (dB)", "higher"),
}
PLACEHOLDER_REPO_ID = "USER/NAME"


def _unreachable_errors() -> tuple[type[Exception], ...]:
    """What a request raises when the Hub cannot be reached: a socket error, or a transport error of the HTTP
    library huggingface_hub uses (httpx up to huggingface_hub 1.x, httpx2 from 2.0)."""
    errors: list[type[Exception]] = [OSError]
    for library in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(library).TransportError)
        except ImportError:
            continue
    return tuple(errors)


class HubError(ValueError):
    """A card or a push that cannot be made: a folder that is not a training run, no token, offline mode."""


@dataclass
class TrainingRun:
    """What a model card says about one run, as read from its output folder."""

    output_dir: Path
    vae_config: dict[str, Any]
    vae_parameters: int
    has_ema_weights: bool
    config: Config | None
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


def count_parameters(weights_file: Path) -> int:
    """The number of weights stored in a safetensors file, read from its header."""
    with safe_open(weights_file, framework="pt") as weights:
        total = 0
        for name in weights.keys():
            size = 1
            for dim in weights.get_slice(name).get_shape():
                size *= dim
            total += size
    return total


def latest_sample(output_dir: Path) -> str | None:
    """``samples/sample-<milestone>.png`` of the highest milestone, relative to ``output_dir``."""
    samples = find_samples([output_dir / "samples"])
    return samples[-1][1].relative_to(output_dir).as_posix() if samples else None


def read_training_run(output_dir: str | Path) -> TrainingRun:
    """Collect what the card needs from ``output_dir``; only ``vae/`` is required."""
    output_dir = Path(output_dir)
    vae_config = _read_json(output_dir / "vae" / "config.json")
    weights = output_dir / "vae" / WEIGHTS_FILE
    if vae_config is None or not weights.is_file():
        raise HubError(f"{output_dir}: expected a training run with vae/config.json and vae/{WEIGHTS_FILE}")
    config_file = output_dir / "config.yaml"
    return TrainingRun(
        output_dir=output_dir,
        vae_config=vae_config,
        vae_parameters=count_parameters(weights),
        has_ema_weights=(output_dir / "vae" / EMA_WEIGHTS_FILE).is_file(),
        config=load_config(config_file) if config_file.is_file() else None,
        summary=_read_json(output_dir / "training_summary.json"),
        evaluation=_read_json(output_dir / "metrics.json"),
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


def _eval_results(run: TrainingRun) -> list[EvalResult] | None:
    if not run.evaluation:
        return None
    return _metric_results(run.evaluation["metrics"], run.config.data if run.config else None,
                           run.evaluation.get("split"), "Radio map reconstruction",
                           f"{run.evaluation.get('variant') or 'plain'} weights")


def model_card_data(run: TrainingRun, model_name: str) -> ModelCardData:
    """The card's YAML metadata: library, tags, license, data and ``model-index`` when evaluated."""
    data = run.config.data if run.config else None
    dataset_id = _hub_dataset_id(data) if data else None
    tags = CARD_TAGS + ([data.source] if data and data.source != "datasets" else [])
    return ModelCardData(
        library_name="diffusers",
        license=LICENSE,
        tags=tags,
        datasets=[dataset_id] if dataset_id else None,
        metrics=[name for name in METRICS if run.evaluation and name in run.evaluation["metrics"]] or None,
        model_name=model_name,
        eval_results=_eval_results(run),
    )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _training_rows(run: TrainingRun) -> list[tuple[str, str]]:
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


def _evaluation_rows(run: TrainingRun) -> list[tuple[str, str, str, str]]:
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


def _train_subset_sentence(run: TrainingRun) -> str | None:
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


def render_model_card(output_dir: str | Path, repo_id: str | None = None) -> ModelCard:
    """The model card of the run in ``output_dir``; loading examples name ``repo_id`` (or the config's)."""
    run = read_training_run(output_dir)
    repo_id = repo_id or (run.config.train.hub_repo_id if run.config else None)
    model_name = repo_id.split("/")[-1] if repo_id else run.output_dir.resolve().name
    _, data_description = describe_data(run.config.data if run.config else None)
    if run.config and run.config.data.augment == "dihedral":
        data_description += ", each training map also under the 7 other flips and quarter turns of the square"
    parameters = (run.summary or {}).get("parameters", {})
    return ModelCard.from_template(
        model_card_data(run, model_name),
        template_path=str(CARD_TEMPLATE),
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
        training_rows=_training_rows(run),
        evaluation=run.evaluation,
        evaluation_rows=_evaluation_rows(run),
        train_subset_sentence=_train_subset_sentence(run),
        sample=run.sample,
    )


def write_model_card(output_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write the run's card to ``output_dir/README.md`` (replaced atomically) and return that path."""
    return write_atomically(Path(output_dir) / CARD_FILE, str(render_model_card(output_dir, repo_id)))


# --- the second stage: a run whose output folder holds pipeline/ ---------------------------------------------------

PIPELINE_DIR = "pipeline"
PIPELINE_CARD_TEMPLATE = Path(__file__).parent / "templates" / "pipeline_model_card.md"
PIPELINE_CARD_TAGS = ["radio-map", "radiodiff", "latent-diffusion", "pathloss", "image-to-image"]
# beside the pipeline's own files, which go to the root of the repository so that from_pretrained(repo_id) loads it
PIPELINE_RUN_PATTERNS = ["samples/*.png", "metrics.json", "training_summary.json"]
PIPELINE_FILE_PATTERNS = ["model_index.json", "*/config.json", "*/scheduler_config.json", "*/*.safetensors"]
# the reference rows of a pipeline's metrics.json; model-index holds the model's row only
PIPELINE_ROWS = {"model": "model", "vae_ceiling": "VAE ceiling (its own round trip)",
                 "physics_baseline": "physics baseline (log-distance, no learning)"}


def is_pipeline_run(output_dir: str | Path) -> bool:
    return (Path(output_dir) / PIPELINE_DIR / "model_index.json").is_file()


@dataclass
class PipelineRun:
    """What a second-stage card says, as read from ``output_dir`` (``pipeline/`` is required)."""

    output_dir: Path
    formulation: Formulation
    scheduler_class: str
    default_steps: int
    carries_code: bool
    vae_config: dict[str, Any]
    unet_config: dict[str, Any]
    encoder_config: dict[str, Any]
    parameters: dict[str, int]
    data: DataConfig | None
    train: dict[str, Any]
    summary: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    sample: str | None

    @property
    def map_size(self) -> int:
        return int(self.vae_config["sample_size"])

    @property
    def latent_shape(self) -> list[int]:
        side = self.map_size // downsampling_factor(self.vae_config["block_out_channels"])
        return [self.vae_config["latent_channels"], side, side]


def _component(pipeline_dir: Path, name: str) -> tuple[dict[str, Any], int]:
    """A component's config and parameter count; its weights must be safetensors."""
    config = _read_json(pipeline_dir / name / "config.json")
    weights = pipeline_dir / name / WEIGHTS_FILE
    if config is None or not weights.is_file():
        raise HubError(f"{pipeline_dir}: expected {name}/config.json and {name}/{WEIGHTS_FILE}")
    return config, count_parameters(weights)


def _run_settings(output_dir: Path) -> tuple[DataConfig | None, dict[str, Any]]:
    """The data section and the raw ``train`` section of the run's ``config.yaml`` (either stage's schema)."""
    config_file = output_dir / "config.yaml"
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
    index = _read_json(pipeline_dir / "model_index.json")
    if index is None:
        raise HubError(f"{output_dir}: expected a second-stage run with {PIPELINE_DIR}/model_index.json")
    components = {name: _component(pipeline_dir, name) for name in ("vae", "unet", "condition_encoder")}
    scheduler_class = index["scheduler"][1]
    data, train = _run_settings(output_dir)
    return PipelineRun(
        output_dir=output_dir,
        formulation=_formulation(output_dir, scheduler_class),
        scheduler_class=scheduler_class,
        default_steps=index.get("default_num_inference_steps", DEFAULT_NUM_INFERENCE_STEPS),
        carries_code=bool(shipped_code(pipeline_dir)),
        vae_config=components["vae"][0],
        unet_config=components["unet"][0],
        encoder_config=components["condition_encoder"][0],
        parameters={name: parameters for name, (_, parameters) in components.items()},
        data=data,
        train=train,
        summary=_read_json(output_dir / "training_summary.json"),
        evaluation=_read_json(output_dir / "metrics.json"),
        sample=latest_sample(output_dir),
    )


def _pipeline_eval_results(run: PipelineRun) -> list[EvalResult] | None:
    rows = (run.evaluation or {}).get("rows")
    if not rows:
        return None
    return _metric_results(rows["model"]["metrics"], run.data, run.evaluation.get("split"), "Radio map construction",
                           f"{run.evaluation.get('num_inference_steps')} steps")


def _pipeline_evaluation_rows(run: PipelineRun) -> list[dict[str, str]]:
    """One row per line of the table (model, VAE ceiling, physics baseline): label and formatted metrics."""
    rows = (run.evaluation or {}).get("rows") or {}
    table = []
    for key, label in PIPELINE_ROWS.items():
        if key not in rows:
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


def _pipeline_training_rows(run: PipelineRun) -> list[tuple[str, str]]:
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
    """The model card of the second-stage run in ``output_dir``; loading examples name ``repo_id``."""
    run = read_pipeline_run(output_dir)
    repo_id = repo_id or run.train.get("hub_repo_id")
    model_name = repo_id.split("/")[-1] if repo_id else run.output_dir.resolve().name
    dataset_type, data_description = describe_data(run.data)
    card_data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="image-to-image",
        license=LICENSE,
        tags=PIPELINE_CARD_TAGS + [run.formulation.name.replace("_", "-")] + (
            [run.data.source] if run.data and run.data.source != "datasets" else []),
        datasets=[dataset_type] if run.data and _hub_dataset_id(run.data) else None,
        metrics=[name for name in METRICS if _pipeline_eval_results(run)] or None,
        model_name=model_name,
        eval_results=_pipeline_eval_results(run),
    )
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
    """Write the second-stage run's card to ``output_dir/README.md`` (replaced atomically) and return that path.

    The trainer calls it at the end of a run; ``radiodiff card`` calls it for a folder with ``pipeline/``."""
    return write_atomically(Path(output_dir) / CARD_FILE, str(render_pipeline_model_card(output_dir, repo_id)))


def _without_local_paths(config_file: Path) -> bytes:
    """A component's JSON as uploaded: diffusers records the folder a component was loaded from in
    ``_name_or_path``, a machine-local path that must not leave the machine."""
    config = json.loads(config_file.read_text())
    config.pop("_name_or_path", None)
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def shipped_code(pipeline_dir: Path) -> list[str]:
    """The code files that ``model_index.json`` names and the folder holds, as diffusers fetches them for
    ``trust_remote_code``: ``<_class_name[0]>.py`` at the root, ``<component>/<entry[0]>.py`` in a component's
    folder."""
    index = _read_json(pipeline_dir / "model_index.json") or {}
    pipeline_class = index.get("_class_name")
    named = [f"{pipeline_class[0]}.py"] if isinstance(pipeline_class, list) else []
    named += [f"{name}/{entry[0]}.py" for name, entry in index.items()
              if not name.startswith("_") and isinstance(entry, list) and isinstance(entry[0], str)]
    return [name for name in named if (pipeline_dir / name).is_file()]


def pipeline_upload_operations(output_dir: Path) -> list[CommitOperationAdd]:
    """The pipeline's files at the repository's root (JSON without local paths, the code it ships), then samples
    and metrics."""
    pipeline_dir = output_dir / PIPELINE_DIR
    pipeline_files = sorted(p.relative_to(pipeline_dir).as_posix() for p in pipeline_dir.rglob("*") if p.is_file())
    operations = []
    patterns = PIPELINE_FILE_PATTERNS + shipped_code(pipeline_dir)
    for name in filter_repo_objects(pipeline_files, allow_patterns=patterns):
        content = _without_local_paths(pipeline_dir / name) if name.endswith(".json") else str(pipeline_dir / name)
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    run_files = sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file())
    for name in filter_repo_objects(run_files, allow_patterns=PIPELINE_RUN_PATTERNS):
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(output_dir / name)))
    return operations


def upload_patterns(include_discriminator: bool) -> list[str]:
    """The files of an output folder that a push uploads besides the card (``filter_repo_objects`` patterns)."""
    return UPLOAD_PATTERNS + (DISCRIMINATOR_PATTERNS if include_discriminator else [])


def files_to_upload(output_dir: Path, include_discriminator: bool) -> list[str]:
    """The run's files a push sends, relative to ``output_dir``, besides the card."""
    files = sorted(path.relative_to(output_dir).as_posix() for path in output_dir.rglob("*") if path.is_file())
    return list(filter_repo_objects(files, allow_patterns=upload_patterns(include_discriminator)))


def _check_can_push(output_dir: Path, repo_id: str, include_discriminator: bool, token: str | None) -> str:
    """The token to push with, once everything a push needs is there; raises ``HubError`` otherwise."""
    if is_pipeline_run(output_dir):
        read_pipeline_run(output_dir)
        if include_discriminator:
            raise HubError(f"{output_dir}: --include-discriminator: a second-stage run has no discriminator")
    else:
        read_training_run(output_dir)
    if include_discriminator and not (output_dir / "discriminator" / "config.json").is_file():
        raise HubError(f"{output_dir}: --include-discriminator, but there is no discriminator/config.json")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubError(f"repo id {repo_id!r}: {error}") from None
    if "/" not in repo_id:
        raise HubError(f"repo id {repo_id!r}: expected USER/NAME (or ORGANIZATION/NAME)")
    if constants.is_offline_mode():
        raise HubError("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it (and be online) to push")
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN, then push again")
    return token


def push_to_hub(
    output_dir: str | Path,
    repo_id: str,
    private: bool = False,
    include_discriminator: bool = False,
    token: str | None = None,
) -> str:
    """Create ``repo_id`` (if needed) and upload the run: ``vae/``, the card, samples and metrics.

    A second-stage run (``output_dir/pipeline/model_index.json``) uploads its pipeline at the repository's root,
    so that ``RadioDiffPipeline.from_pretrained(repo_id)`` loads it, with component configs stripped of the
    local paths diffusers records in them.

    ``discriminator/`` goes too with ``include_discriminator``; checkpoints, optimizer states, logs and the
    config (which holds local paths) never do. The card, whose examples name ``repo_id``, is uploaded from
    memory in the same commit and written to ``output_dir/README.md`` only once the push succeeded. Raises
    ``HubError`` without a token, in offline mode, or when the Hub cannot be reached or refuses the push;
    the local files are then untouched.

    Returns:
        The URL of the repository.
    """
    output_dir = Path(output_dir)
    token = _check_can_push(output_dir, repo_id, include_discriminator, token)
    if is_pipeline_run(output_dir):
        card = str(render_pipeline_model_card(output_dir, repo_id))
        files = pipeline_upload_operations(output_dir)
    else:
        card = str(render_model_card(output_dir, repo_id))
        files = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(output_dir / name))
                 for name in files_to_upload(output_dir, include_discriminator)]
    operations = [CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8"))] + files
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(repo_id=repo_id, repo_type="model", operations=operations,
                          commit_message="Upload RadioDiff pipeline" if is_pipeline_run(output_dir)
                          else "Upload RadioDiff VAE")
    except HfHubHTTPError as error:
        raise HubError(f"pushing {output_dir} to {repo_id} failed: {error}") from None
    except _unreachable_errors() as error:
        raise HubError(f"pushing {output_dir} to {repo_id} failed: the Hub cannot be reached ({error})") from None
    write_atomically(output_dir / CARD_FILE, card)
    return str(url)
