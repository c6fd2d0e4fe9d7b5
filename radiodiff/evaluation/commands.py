"""What the ``evaluate``, ``latent-scale`` and ``encode-latents`` commands do: a saved VAE folder and a config's
split in, files out. Library code the CLI calls in one line each."""

from __future__ import annotations

from pathlib import Path
import datasets

from ..config import load_data_config, load_vae_config
from ..data import build_dataset, prepare_data, unaugmented
from ..file_names import PIPELINE_INDEX_FILE, RUN_CONFIG_FILE
from ..file_writing import refuse_existing
from ..latents import encode_latents
from ..schedulers import check_eta, formulation_of
from .evaluate import VAEEvaluationResult, evaluate_vae, metrics_paths, train_subset_summary, write_vae_metrics
from .gallery import save_vae_gallery
from .inference import default_variant, load_vae
from .latent_scale import LatentStats, latent_statistics, write_latent_scale
from .pipeline import (
    PipelineEvaluationResult,
    evaluate_pipeline,
    format_pipeline_summary,
    load_pipeline,
    refuse_sampling_options,
    save_pipeline_gallery,
    write_pipeline_metrics,
)


# what ``--variant`` takes for the plain weights, when the folder also has EMA ones
MAIN_VARIANT = "main"
EVALUATION_FOLDER = "evaluation"


def resolve_variant(model_dir: str | Path, variant: str | None) -> str | None:
    """``variant`` as given (``"main"``: the plain weights), or by default the trainer's (EMA when present)."""
    if variant is None:
        return default_variant(model_dir)
    return None if variant == MAIN_VARIANT else variant


def resolve_config(model_dir: str | Path, config_path: str | None) -> str:
    """``config_path``, or the run's own ``config.yaml`` beside ``model_dir`` (``OUTPUT_DIR/vae``)."""
    if config_path is not None:
        return config_path
    run_config = Path(model_dir).parent / RUN_CONFIG_FILE
    if not run_config.is_file():
        raise FileNotFoundError(
            f"{run_config}: not found, so the maps to use are unknown; give --config (the training config YAML)"
        )
    return str(run_config)


def is_pipeline_folder(model_dir: str | Path) -> bool:
    """A saved diffusers pipeline (``OUTPUT_DIR/pipeline``) rather than a VAE folder."""
    return (Path(model_dir) / PIPELINE_INDEX_FILE).is_file()


def default_evaluation_out(model_dir: str | Path, variant: str | None, split: str) -> Path:
    """``OUTPUT_DIR/evaluation/<variant>-<split>/`` of the run whose ``vae/`` folder is ``model_dir``."""
    return Path(model_dir).parent / EVALUATION_FOLDER / f"{variant or MAIN_VARIANT}-{split}"


def split_dataset(config_path: str, overrides: list[str], split: str, *, with_conditions: bool = False):
    """The maps of ``split`` as the config describes them (the synthetic cache is generated on first use), each
    once and as it is: ``data.augment`` is for training, not for measuring or encoding maps."""
    config = load_vae_config(config_path, overrides)
    prepare_data(config.data)
    dataset = build_dataset(config.data, split, with_conditions=with_conditions)
    return unaugmented(dataset), config.data.num_workers


def format_vae_summary(result: VAEEvaluationResult) -> str:
    """The numbers of ``metrics.json`` as a few lines for the terminal."""
    summary = result.summary()
    lines = [f"{summary['num_maps']} maps of split {summary['split']!r} (weights: {summary['variant'] or 'main'})"]
    for name, stats in summary["metrics"].items():
        if stats["mean"] is None:
            lines.append(f"  {name:5s} undefined (every map is a perfect reconstruction)")
            continue
        interval = "" if stats["ci95"] is None else f"  95% CI [{stats['ci95'][0]:.4g}, {stats['ci95'][1]:.4g}]"
        lines.append(f"  {name:5s} {stats['mean']:.4g} ± {stats['std']:.3g}{interval}")
    if summary["non_finite"]["psnr"]:
        lines.append(f"  {summary['non_finite']['psnr']} perfect maps (infinite PSNR) are left out of the PSNR")
    latent = summary["latent"]
    lines.append(
        f"  latent {'x'.join(map(str, latent['shape']))}, compression factor {latent['compression_factor']:.4g}, "
        f"KL {latent['kl_per_element']:.4g} nats per latent element"
    )
    return "\n".join(lines)


def format_train_subset(validation: VAEEvaluationResult, train_subset: VAEEvaluationResult) -> str:
    """The ``train_subset`` block of ``metrics.json`` as one line beside the validation figures."""
    block = train_subset_summary(validation, train_subset)
    means = {name: stats["mean"] for name, stats in block["metrics"].items()}
    if means["psnr"] is None or block["gap"]["psnr"] is None:
        return f"  training subset ({block['num_maps']} maps): every map is a perfect reconstruction"
    return (
        f"  training subset ({block['num_maps']} maps, not augmented): PSNR {means['psnr']:.2f} dB, "
        f"NMSE {means['nmse']:.4g}, SSIM {means['ssim']:.3f}; gap to validation "
        f"{block['gap']['psnr']:+.2f} dB PSNR (training minus validation)"
    )


def run_evaluate(
    model_dir: str,
    config_path: str | None,
    *,
    variant: str | None,
    split: str,
    out: str | None,
    batch_size: int,
    device: str,
    sample_posterior: bool = False,
    gallery: int = 0,
    overwrite: bool = False,
    overrides: list[str] | None = None,
    steps: int | None = None,
    seed: int = 0,
    eta: float | None = None,
) -> VAEEvaluationResult | PipelineEvaluationResult:
    """Evaluate a saved VAE, or a saved pipeline (a folder with ``model_index.json``), on a split; write ``out``
    (metrics JSON), ``per_image.csv`` and, with ``gallery``, ``gallery.png``.

    Defaults are the trainer's: the run's own ``config.yaml``, for a VAE its EMA weights when present, and
    ``OUTPUT_DIR/evaluation/<variant>-<split>/`` (a pipeline: ``pipeline-<split>-<steps>steps/``) as the output.
    An existing ``metrics.json`` there is replaced only with ``overwrite``. ``steps`` (sampling steps, default the
    pipeline's ``default_num_inference_steps``, which its run saved in ``model_index.json``, or 5) and ``eta`` (RadioDiff's sampler's share of the posterior noise, default the pipeline's scheduler's) are a
    pipeline's; ``seed`` seeds a pipeline's samples, or a VAE's posterior samples with ``sample_posterior``.
    """
    if is_pipeline_folder(model_dir):
        if sample_posterior:
            raise ValueError(f"--sample-posterior: {model_dir} is a pipeline; it applies to a VAE folder only")
        return run_evaluate_pipeline(
            model_dir, config_path, variant=variant, split=split, out=out, batch_size=batch_size, device=device,
            steps=steps, seed=seed, gallery=gallery, overwrite=overwrite,
            overrides=overrides, eta=eta,
        )
    for option, value in (("--steps", steps), ("--eta", eta)):
        if value is not None:
            raise ValueError(f"{option}: {model_dir} is a VAE folder; {option} applies to a pipeline folder "
                             "(one with model_index.json)")
    variant = resolve_variant(model_dir, variant)
    config_path = resolve_config(model_dir, config_path)
    target = Path(out) if out is not None else default_evaluation_out(model_dir, variant, split)
    json_path, csv_path = metrics_paths(target)
    refuse_existing([json_path], overwrite)
    vae = load_vae(model_dir, variant)
    dataset, num_workers = split_dataset(config_path, overrides or [], split)
    result = evaluate_vae(vae, dataset, batch_size=batch_size, device=device, sample_posterior=sample_posterior,
                          num_workers=num_workers, split=split, variant=variant, seed=seed)
    write_vae_metrics(result, json_path)
    print(format_vae_summary(result))
    print(f"wrote {json_path} and {csv_path}")
    if gallery > 0:
        gallery_path = json_path.parent / "gallery.png"
        print(f"wrote {save_vae_gallery(vae, dataset, result, gallery_path, count=gallery, device=device)}")
    return result


def run_evaluate_pipeline(
    pipeline_dir: str,
    config_path: str | None,
    *,
    variant: str | None,
    split: str,
    out: str | None,
    batch_size: int,
    device: str,
    steps: int | None,
    seed: int,
    gallery: int = 0,
    overwrite: bool = False,
    overrides: list[str] | None = None,
    eta: float | None = None,
) -> PipelineEvaluationResult:
    """The pipeline branch of :func:`run_evaluate`: the model, the VAE ceiling (where the pipeline has a VAE) and the
    physics baseline. A pipeline without a scheduler (RadioUNet's) maps in one pass: ``steps`` and ``eta`` are refused
    and its output folder is ``pipeline-<split>/``."""
    if steps is not None and steps < 1:
        raise ValueError(f"--steps: {steps}; expected an integer >= 1")
    if eta is not None:
        try:
            check_eta(eta)
        except ValueError as error:
            raise ValueError(f"--{error}") from None
    variant = None if variant == MAIN_VARIANT else variant
    refuse_sampling_options(pipeline_dir, {"--steps": steps, "--eta": eta})
    config_path = resolve_config(pipeline_dir, config_path)
    pipeline = load_pipeline(pipeline_dir, variant)
    if steps is None and "scheduler" in pipeline.components:
        steps = pipeline.config.default_num_inference_steps
    sampling = "" if steps is None else f"-{steps}steps{'' if eta is None else '-eta' + format(eta, 'g')}"
    target = Path(out) if out is not None else Path(pipeline_dir).parent / EVALUATION_FOLDER / f"pipeline-{split}{sampling}"
    json_path, csv_path = metrics_paths(target)
    refuse_existing([json_path], overwrite)
    if eta is not None:
        formulation = formulation_of(pipeline.scheduler)
        if not formulation.takes_eta:
            raise ValueError(f"--eta: {pipeline_dir} samples by {formulation.name}, whose sampler draws no noise; "
                             "--eta applies to RadioDiff's sampler")
        pipeline.scheduler = type(pipeline.scheduler).from_config(pipeline.scheduler.config, eta=eta)
    # the data section only: a second-stage config.yaml has other sections than the first stage's
    data = load_data_config(config_path, overrides)
    prepare_data(data)
    # each map once, as it is: a training split's augmented copies are not more maps
    dataset = unaugmented(build_dataset(data, split, with_conditions=True))
    result = evaluate_pipeline(pipeline, dataset, num_inference_steps=steps, batch_size=batch_size, device=device,
                               seed=seed, split=split, num_workers=data.num_workers)
    write_pipeline_metrics(result, json_path)
    print(format_pipeline_summary(result.summary()))
    print(f"wrote {json_path} and {csv_path}")
    if gallery > 0:
        path = save_pipeline_gallery(pipeline, dataset, result, json_path.parent / "gallery.png", count=gallery,
                                     device=device)
        print(f"wrote {path}")
    return result


def run_latent_scale(
    model_dir: str,
    config_path: str | None,
    *,
    variant: str | None,
    split: str,
    batch_size: int,
    device: str,
    write: bool = False,
    value: float | None = None,
    overrides: list[str] | None = None,
) -> LatentStats | None:
    """Measure the latent scale on a split (``write``: store it in the VAE's config), or store a given ``value``."""
    if value is not None:
        print(f"wrote scaling_factor {value} into {write_latent_scale(model_dir, value)}")
        return None
    variant = resolve_variant(model_dir, variant)
    vae = load_vae(model_dir, variant)
    dataset, num_workers = split_dataset(resolve_config(model_dir, config_path), overrides or [], split)
    stats = latent_statistics(vae, dataset, batch_size=batch_size, device=device, num_workers=num_workers)
    print(f"latents of {stats.num_maps} maps of split {split!r}:")
    for channel, (mean, std) in enumerate(zip(stats.mean, stats.std)):
        print(f"  channel {channel}: mean {mean:.4g}, std {std:.4g}")
    print(
        f"shift factor (mean) {stats.shift_factor:.6g}, scaling factor (1/std) {stats.scaling_factor:.6g} (the VAE's "
        f"config has {vae.config.shift_factor} and {vae.config.scaling_factor})"
    )
    if write:
        print(f"wrote them into {write_latent_scale(model_dir, stats.scaling_factor, stats.shift_factor)}")
    return stats


def run_encode_latents(
    model_dir: str,
    config_path: str | None,
    out_dir: str,
    *,
    variant: str | None,
    split: str,
    batch_size: int,
    device: str,
    sample: bool = False,
    seed: int = 0,
    overrides: list[str] | None = None,
) -> datasets.Dataset:
    """Encode a split's maps with their conditions into the latents dataset ``out_dir``."""
    variant = resolve_variant(model_dir, variant)
    config_path = resolve_config(model_dir, config_path)
    vae = load_vae(model_dir, variant)
    dataset, num_workers = split_dataset(config_path, overrides or [], split, with_conditions=True)
    source = {"model": str(Path(model_dir)), "variant": variant, "config": config_path, "split": split}
    latents = encode_latents(vae, dataset, out_dir, batch_size=batch_size, device=device, sample=sample, seed=seed,
                             num_workers=num_workers, source=source)
    print(f"wrote {len(latents)} latents to {out_dir} (columns: {', '.join(latents.column_names)})")
    return latents
