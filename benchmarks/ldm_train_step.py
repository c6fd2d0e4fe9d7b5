"""Speed of the second stage's real training step, with latents encoded on the fly against precomputed ones.

    python benchmarks/ldm_train_step.py [--config configs/ldm_quickstart.yaml] [--vae-config configs/quickstart.yaml]
                                        [--batch-size 16] [--size 64] [--steps 10] [--warmup 2]
                                        [--variants on_the_fly,encoded,flow_matching] [dotted.key=value ...]

Each variant runs in its own process: it builds a :class:`radiodiff.training.LDMTrainer` (on synthetic maps of
``--size`` pixels, with a random first-stage VAE shaped as ``--vae-config`` describes, so no trained VAE is needed;
``encoded`` first writes the training split's latents with ``radiodiff.latents.encode_latents``) and calls
``LDMTrainer.train_step`` — the code a run executes, minus checkpoints, samples and logs. After ``--warmup`` steps
it alternates one timed training step with one timed bare denoiser forward+backward of the same batch (condition
encoder and UNet on a fixed noisy latent; no VAE, no loss weighting, no optimizer), so the ratio step / bare
denoiser — the cost of the VAE encoding, the loss, the optimizer and the EMA — is measured under the same load.
Times are medians. The columns are ``benchmarks/train_step.py``'s: peak memory, the model FLOPs of one whole step
(the frozen VAE's encoding included, attention counted by ``benchmarks/flops.py``; none for a compiled step, whose
ops the counter cannot see), TFLOP/s and the fraction of the GPU's dense peak.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from train_step import current_rss_bytes, format_row, measure_step, run_variant, run_variants, trainer_step

REPO = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, list[str]] = {
    "on_the_fly": [],
    "encoded": ["latents.source=encoded"],
    "flow_matching": ["denoiser.formulation=flow_matching"],
}


def measure_variant(variant: str, args: argparse.Namespace, scratch: Path) -> dict:
    import torch

    from radiodiff.config import load_vae_config, read_ldm_config
    from radiodiff.data import build_dataset, prepare_data
    from radiodiff.latents import encode_latents
    from radiodiff.models import RadioDiffVAE
    from radiodiff.training.ldm_trainer import build_ldm_trainer

    torch.manual_seed(0)
    architecture = load_vae_config(args.vae_config).model.architecture()
    vae = RadioDiffVAE.from_block_channels(**architecture, sample_size=args.size)
    vae.save_pretrained(scratch / "vae")
    overrides = [
        f"output_dir={scratch / 'run'}",
        f"vae.path={scratch / 'vae'}",
        f"latents.dir={scratch / 'latents'}",
        "data.source=synthetic",
        "data.augment=none",  # encoded latents are of the maps as they are; every variant reads the same maps
        f"data.synthetic.size={args.size}",
        f"data.synthetic.maps={max(16, args.batch_size)}",  # x2 transmitters: the training split holds a batch
        "data.synthetic.tx_per_map=2",
        f"train.batch_size={args.batch_size}",
        "train.num_sample_images=1",
        *args.overrides,
        *VARIANTS[variant],
    ]
    config = read_ldm_config(args.config, overrides)[0]
    prepare_data(config.data)
    cuda = torch.cuda.is_available()
    if config.latents.source == "encoded":
        maps = build_dataset(config.data, "train", with_conditions=True)
        encode_latents(vae, maps, config.latents.dir, batch_size=args.batch_size, device="cuda" if cuda else "cpu")
    rss_before = current_rss_bytes()
    trainer = build_ldm_trainer(config)
    training_step, loaded = trainer_step(trainer)
    batch = loaded[0]
    latent_size = trainer.raw_model.unet.config.sample_size
    latent_shape = (args.batch_size, trainer.vae.config.latent_channels, latent_size, latent_size)
    noisy = torch.randn(latent_shape, device=trainer.accelerator.device)
    timesteps = torch.full((args.batch_size,), 500.0, device=trainer.accelerator.device)

    def bare_denoiser_step() -> None:
        output = trainer.model(noisy, timesteps, batch["buildings"], batch["transmitter"])
        trainer.accelerator.backward(output.float().square().mean())
        trainer.model.zero_grad(set_to_none=True)

    row = measure_step(training_step, bare_denoiser_step, args, config, rss_before)
    return {
        **row,
        "parameters": sum(p.numel() for p in trainer.raw_model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "ldm_quickstart.yaml"))
    parser.add_argument("--vae-config", default=str(REPO / "configs" / "quickstart.yaml"),
                        help="a first-stage config whose model: section shapes the random frozen VAE")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="map side in pixels")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (each paired with a bare denoiser step)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--one-variant", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="config overrides (dotted.key=value) for every variant")
    args = parser.parse_args()

    if args.one_variant:
        with tempfile.TemporaryDirectory(prefix="radiodiff-bench-") as scratch:
            print(json.dumps(measure_variant(args.one_variant, args, Path(scratch))))
        return
    options = ("--vae-config", args.vae_config)
    rows = run_variants(parser, args, VARIANTS, lambda variant, args: run_variant(variant, args, __file__, options))
    measured = [row for row in rows.values() if "error" not in row]
    device = measured[0]["device"] if measured else "?"
    parameters = f"{measured[0]['parameters'] / 1e6:.2f}M trained parameters, " if measured else ""
    print(f"\n{Path(args.config).name}: {parameters}{args.size}x{args.size} maps, batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup} warm-up, on {device}; load average {os.getloadavg()[0]:.1f}\n")
    print("| variant        |  ms/step | images/s | peak MiB | GFLOP/step | TFLOP/s | of peak | bare denoiser ms "
          "| step / bare |")
    print("|----------------|---------:|---------:|---------:|-----------:|--------:|--------:|-----------------:"
          "|------------:|")
    for variant, row in rows.items():
        print(format_row(variant, row))


if __name__ == "__main__":
    main()
