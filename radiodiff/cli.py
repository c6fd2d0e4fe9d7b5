"""The ``radiodiff`` command. Thin: each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from .arguments import parse_arguments
from .config import ConfigError
from .notices import show_warnings_as_lines

SubcommandAdder = Callable[[argparse._SubParsersAction], None]


def _add_info(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="print the package, library and device versions")

    def run(args: argparse.Namespace) -> int:
        import accelerate
        import diffusers
        import torch

        from . import __version__

        print(f"radiodiff {__version__}, diffusers {diffusers.__version__}, accelerate {accelerate.__version__}")
        print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
        return 0

    parser.set_defaults(run=run)


def _add_space_arguments(parser: argparse.ArgumentParser, option: str, help: str, metavar: str) -> None:
    parser.add_argument(option, default=None, help=help, metavar=metavar)
    parser.add_argument("--space-package", default=None, metavar="REQUIREMENT",
                        help="the Space's requirements.txt line that installs radiodiff (default: radiodiff[demo] at "
                             "this version; for a package not on PyPI e.g. "
                             "'radiodiff[demo] @ git+https://github.com/USER/REPO')")


def _add_card(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("card", help="write the model card OUTPUT_DIR/README.md of a training run")
    parser.add_argument("output_dir", help="the run's output folder (with vae/, or pipeline/ for the second stage)")
    parser.add_argument("--repo-id", help="the Hub repository the card's loading examples name (USER/NAME)")
    _add_space_arguments(parser, "--space", "also write a pipeline run's demo as a Space folder (app.py, "
                                            "requirements.txt, README.md) into SPACE_DIR; needs --repo-id", "SPACE_DIR")

    def run(args: argparse.Namespace) -> int:
        from .hub import is_pipeline_run, write_pipeline_model_card, write_space, write_vae_model_card

        if args.space and not args.repo_id:
            raise ValueError("--space: the Space loads the pipeline from its model repository; give --repo-id")
        write = write_pipeline_model_card if is_pipeline_run(args.output_dir) else write_vae_model_card
        print(f"wrote {write(args.output_dir, repo_id=args.repo_id)}")
        if args.space:
            print(f"wrote {write_space(args.output_dir, args.space, args.repo_id, args.space_package)}")
        return 0

    parser.set_defaults(run=run)


def _add_push(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push", help="upload a training run (vae/ or pipeline/, card, samples, metrics; never checkpoints) to the Hub"
    )
    parser.add_argument("output_dir", help="the run's output folder")
    parser.add_argument("--repo-id", required=True, help="the model repository to create or update (USER/NAME)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--include-discriminator", action="store_true", help="also upload discriminator/")
    _add_space_arguments(parser, "--space-id", "also upload a pipeline run's demo to this Space (USER/NAME), "
                                               "loading the pipeline from --repo-id", "USER/NAME")

    def run(args: argparse.Namespace) -> int:
        from .hub import push_to_hub

        url = push_to_hub(
            args.output_dir, args.repo_id, private=args.private, include_discriminator=args.include_discriminator,
            space_id=args.space_id, space_package=args.space_package,
        )
        print(f"pushed {args.output_dir} to {url}")
        if args.space_id:
            print(f"pushed its demo to https://huggingface.co/spaces/{args.space_id}")
        return 0

    parser.set_defaults(run=run)


def _add_synth(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate synthetic RadioMapSeer-like radio maps (RadioMapSeer layout or a saved dataset)"
    )
    parser.add_argument("--out", required=True, help="the folder to write into")
    parser.add_argument("--maps", type=int, required=True, help="number of cities")
    parser.add_argument("--tx-per-map", type=int, required=True, help="transmitters (gain maps) per city")
    parser.add_argument("--size", type=int, default=256, help="map side in pixels; the city is 256 m across")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes; the output does not depend on it")
    parser.add_argument("--format", choices=["radiomapseer", "datasets"], default="radiomapseer")
    parser.add_argument("--preview", help="also write a PNG of the first maps beside their city layouts")
    parser.add_argument("--engine", choices=["fast", "sionna"], default="fast",
                        help="fast: the dominant-path stand-in (gain/DPM); sionna: ray-traced by Sionna RT "
                             '(gain/SionnaRT; pip install -e ".[sionna]"), resuming where a run stopped')
    sionna = parser.add_argument_group("the sionna engine (docs/raytracing.md)")
    sionna.add_argument("--rays", type=int, help="rays per transmitter (default 2,000,000)")
    sionna.add_argument("--max-depth", type=int, help="reflections per ray (default 3)")
    sionna.add_argument("--building-height", type=float, nargs="+", metavar="M", default=None,
                        help="metres: one height, or MIN MAX for one uniform draw per building (default 25)")
    sionna.add_argument("--threads", type=int, help="Dr.Jit threads per worker (default: the cores shared out)")

    def run(args: argparse.Namespace) -> int:
        from .data.raytracing import RaytracingSettings
        from .data.synthetic import synthesize

        heights = args.building_height
        if heights is not None and len(heights) > 2:
            raise ValueError(f"--building-height {heights}: expected one height or MIN MAX")
        given = dict(samples_per_tx=args.rays, max_depth=args.max_depth,
                     building_height_m=heights and (heights[0], heights[-1]))
        raytracing = RaytracingSettings(**{name: value for name, value in given.items() if value is not None})
        out = synthesize(
            args.out, maps=args.maps, tx_per_map=args.tx_per_map, size=args.size, seed=args.seed,
            workers=args.workers, output_format=args.format, preview=args.preview, engine=args.engine,
            raytracing=raytracing, threads=args.threads,
        )
        print(f"wrote {args.maps * args.tx_per_map} maps to {out}")
        return 0

    parser.set_defaults(run=run)


def _add_convert(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert", help="turn an original RadioDiff checkpoint (model-N.pt) into diffusers vae/ and discriminator/"
    )
    parser.add_argument("checkpoint", help="the original trainer's model-N.pt")
    parser.add_argument("--out", required=True, help="folder to write vae/ and discriminator/ into")
    parser.add_argument("--use-ema", action="store_true", help="make the EMA weights the default ones of vae/")
    parser.add_argument("--config", help="the original first-stage YAML (first_radio.yaml); default: read the weights")

    def run(args: argparse.Namespace) -> int:
        from .convert import convert_checkpoint

        print(convert_checkpoint(args.checkpoint, args.out, use_ema=args.use_ema, config=args.config).summary())
        return 0

    parser.set_defaults(run=run)


def _add_report(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="turn a training log (ours or the original RadioDiff's) into a CSV, a JSON, figures and report.md",
    )
    parser.add_argument("log", type=Path, help="the training log, e.g. OUTPUT_DIR/logs/2026-11-24-07-12_.log")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the report (default: a 'report' folder next to the log)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="folder with sample-<milestone>.png (default: the log's folder and ../samples)")

    def run(args: argparse.Namespace) -> int:
        from .report import write_report

        result = write_report(args.log, args.out or args.log.parent / "report", args.samples)
        print(f"wrote {result.markdown_path} ({len(result.figure_paths)} figures, {len(result.sample_paths)} samples)")
        for finding in result.findings:
            print(f"  - {finding.title}")
        return 0

    parser.set_defaults(run=run)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every command on a saved VAE shares: which weights, which maps, which device."""
    parser.add_argument("--model", required=True,
                        help="a saved VAE folder (OUTPUT_DIR/vae); for evaluate also a pipeline (OUTPUT_DIR/pipeline)")
    parser.add_argument("--variant", default=None,
                        help="weights variant: 'ema', or 'main' for the plain weights (default: ema when present)")
    parser.add_argument("--config", default=None,
                        help="the training config YAML naming the data (default: the run's OUTPUT_DIR/config.yaml)")
    parser.add_argument("--split", default="val", help="which split of the config's data (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")


def _device(args: argparse.Namespace) -> str:
    from .evaluation import default_device

    return args.device or str(default_device())


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="metrics of a saved VAE (reconstruction) or pipeline (generation, beside the VAE ceiling "
                         "and a physics baseline) on a split")
    _add_model_arguments(parser)
    parser.add_argument("--out", default=None,
                        help="metrics JSON or folder; per_image.csv is written beside it "
                             "(default: OUTPUT_DIR/evaluation/<variant>-<split>/, for a pipeline "
                             "OUTPUT_DIR/evaluation/pipeline-<split>-<steps>steps/, for RadioUNet's pipeline-<split>/)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing metrics.json")
    parser.add_argument("--sample-posterior", action="store_true",
                        help="decode posterior samples (seeded) instead of the deterministic posterior mode")
    parser.add_argument("--gallery", type=int, default=0, metavar="N",
                        help="also draw the N best, median and worst maps by NMSE into gallery.png")
    parser.add_argument("--steps", type=int, default=None,
                        help="a pipeline's sampling steps (default: the steps its run was evaluated with, saved in "
                             "the folder's model_index.json as default_num_inference_steps; 5 for a folder "
                             "saved without them; refused for RadioUNet's, which maps in one pass)")
    parser.add_argument("--seed", type=int, default=0,
                        help="map i is sampled with seed + i (a pipeline; a VAE with --sample-posterior)")
    parser.add_argument("--eta", type=float, default=None,
                        help="RadioDiff's sampler: the share of the posterior noise each step draws, 1 the original "
                             "sampler, 0 deterministic (default: the pipeline's scheduler's)")

    def run(args: argparse.Namespace) -> int:
        from .evaluation.commands import run_evaluate

        run_evaluate(args.model, args.config, variant=args.variant, split=args.split, out=args.out,
                     batch_size=args.batch_size, device=_device(args), sample_posterior=args.sample_posterior,
                     gallery=args.gallery, overwrite=args.overwrite, overrides=args.overrides, steps=args.steps,
                     seed=args.seed, eta=args.eta)
        return 0

    parser.set_defaults(run=run)


def _add_compare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="score pipelines and runs on the same maps beside the train mean, the physics baseline and "
                        "the VAE ceiling: one table (comparison.md, .json) and one figure")
    parser.add_argument("models", nargs="+", metavar="PIPELINE_OR_RUN",
                        help="a pipeline folder, a second-stage run (its pipeline/) or a first-stage run (its vae/)")
    parser.add_argument("--out", required=True, help="folder for comparison.md, comparison.json and comparison.png")
    parser.add_argument("--split", default="test", help="which split of the runs' data (default: %(default)s)")
    parser.add_argument("--steps", type=int, nargs="+", default=None, metavar="N",
                        help="sampling steps; several give a row each (default: each pipeline's own); give the "
                             "folders before --steps")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="N maps spread evenly over the split (default: all)")
    parser.add_argument("--config", default=None,
                        help="the training config YAML naming the maps for every model (default: each run's "
                             "OUTPUT_DIR/config.yaml, which must agree)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="map i is sampled with seed + i")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing comparison files in --out")

    def run(args: argparse.Namespace) -> int:
        from .evaluation.compare import run_compare

        run_compare(args.models, out=args.out, split=args.split, steps=args.steps, batch_size=args.batch_size,
                    limit=args.limit, device=_device(args), seed=args.seed, config_path=args.config,
                    overwrite=args.overwrite)
        return 0

    parser.set_defaults(run=run)


def _add_latent_scale(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "latent-scale", help="measure the latent shift (mean) and scale (1/std) of a saved VAE"
    )
    _add_model_arguments(parser)
    parser.set_defaults(split="train")
    parser.add_argument("--write", action="store_true",
                        help="store the measured shift_factor and scaling_factor in the VAE's config.json")
    parser.add_argument("--scaling-factor", type=float, default=None, metavar="VALUE", dest="value",
                        help="store VALUE as the scaling factor without measuring (RadioDiff's is 0.3)")

    def run(args: argparse.Namespace) -> int:
        from .evaluation.commands import run_latent_scale

        run_latent_scale(args.model, args.config, variant=args.variant, split=args.split,
                         batch_size=args.batch_size, device=_device(args), write=args.write, value=args.value,
                         overrides=args.overrides)
        return 0

    parser.set_defaults(run=run)


def _add_encode_latents(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("encode-latents", help="save the latents of a split for the diffusion stage")
    _add_model_arguments(parser)
    parser.set_defaults(split="train")
    parser.add_argument("--out", required=True, help="folder for the saved datasets dataset and its README")
    parser.add_argument("--sample", action="store_true", help="also store one posterior sample per map")
    parser.add_argument("--seed", type=int, default=0, help="seed of the posterior samples")

    def run(args: argparse.Namespace) -> int:
        from .evaluation.commands import run_encode_latents

        run_encode_latents(args.model, args.config, args.out, variant=args.variant, split=args.split,
                           batch_size=args.batch_size, device=_device(args), sample=args.sample, seed=args.seed,
                           overrides=args.overrides)
        return 0

    parser.set_defaults(run=run)


def _add_generate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="radio maps from building maps and transmitters with a saved pipeline (8-bit PNGs)"
    )
    parser.add_argument("--pipeline", required=True, help="a saved pipeline folder (OUTPUT_DIR/pipeline)")
    parser.add_argument("--buildings", required=True,
                        help="a building map PNG (255 = building), or a folder of {map}.png")
    transmitter = parser.add_mutually_exclusive_group(required=True)
    transmitter.add_argument("--transmitter",
                             help="a PNG with one lit pixel, or (with a --buildings folder) a folder of {map}_{tx}.png")
    transmitter.add_argument("--tx", metavar="X,Y", help="the transmitter's pixel: column X, row Y from the top left")
    parser.add_argument("--out", required=True, help="the map PNG to write, or a folder for a folder of inputs")
    parser.add_argument("--figure", default=None,
                        help="also draw the buildings beside the map into this PNG (a folder for a folder of inputs)")
    parser.add_argument("--steps", type=int, default=None,
                        help="sampling steps (default: the steps the pipeline's run was evaluated with, saved in "
                             "its model_index.json as default_num_inference_steps; 5 for a folder saved without "
                             "them; refused for RadioUNet's, which maps in one pass)")
    parser.add_argument("--seed", type=int, default=0, help="map i is sampled with seed + i (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")

    def run(args: argparse.Namespace) -> int:
        from .generation import run_generate

        written = run_generate(args.pipeline, args.buildings, args.out, transmitter=args.transmitter, tx=args.tx,
                               figure=args.figure, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                               device=_device(args), overwrite=args.overwrite)
        print(f"wrote {written[0]}" if len(written) == 1 else f"wrote {len(written)} maps to {args.out}")
        if args.figure:
            print(f"wrote {args.figure}")
        return 0

    parser.set_defaults(run=run)


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="serve a Gradio app: pick or draw a city, click to place the transmitter, see the radio map "
                     '(pip install -e ".[demo]")')
    parser.add_argument("pipelines", nargs="+", metavar="PIPELINE_DIR",
                        help="saved pipeline folders (OUTPUT_DIR/pipeline); several are compared on the same input")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to serve on (default: %(default)s, this machine only; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=7860, help="default: %(default)s")
    parser.add_argument("--config", default=None,
                        help="the training config YAML naming the cities to pick from (default: the first "
                             "pipeline's run's OUTPUT_DIR/config.yaml; none without one)")
    parser.add_argument("--split", default="test", help="which split's maps to pick from (default: %(default)s)")

    def run(args: argparse.Namespace) -> int:
        from .demo import run_demo

        run_demo(args.pipelines, host=args.host, port=args.port, config=args.config, split=args.split)
        return 0

    parser.set_defaults(run=run)


SUBCOMMANDS: list[SubcommandAdder] = [
    _add_info,
    _add_card,
    _add_push,
    _add_convert,
    _add_synth,
    _add_report,
    _add_evaluate,
    _add_compare,
    _add_latent_scale,
    _add_encode_latents,
    _add_generate,
    _add_demo,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radiodiff", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(build_parser(), argv)
    show_warnings_as_lines()
    try:
        return int(args.run(args) or 0)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"radiodiff {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
