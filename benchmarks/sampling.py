"""Sampling speed of RadioDiffPipeline: seconds per 256x256 radio map at 1, 5 and 20 steps, for each formulation,
with random-weight components (the tiny preset and the quickstart-size 4x VAE by default), printed as a table.
Also prints the parameter counts of the presets.

    python benchmarks/sampling.py                                   # CPU or the first GPU
    python benchmarks/sampling.py --preset paper --device cuda --batch-size 8
"""

from __future__ import annotations

import argparse
import time

import torch

from radiodiff.models import PRESETS, RadioDiffVAE, build_condition_encoder, build_denoiser
from radiodiff.pipelines import RadioDiffPipeline
from radiodiff.schedulers import build_scheduler

# the quickstart's VAE (configs/quickstart.yaml): 3 levels, 4x downsampling, a 3x64x64 latent for a 256x256 map
QUICKSTART_VAE = dict(block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_pipeline(preset: str, formulation: str, size: int, device: str) -> RadioDiffPipeline:
    torch.manual_seed(0)
    vae = RadioDiffVAE.from_block_channels(sample_size=size, **QUICKSTART_VAE)
    encoder = build_condition_encoder(preset, downsampling_factor=vae.downsampling_factor)
    latent_size = size // vae.downsampling_factor
    unet = build_denoiser(preset, vae.config.latent_channels, encoder.config.out_channels, formulation, latent_size)
    pipe = RadioDiffPipeline(vae=vae, unet=unet, condition_encoder=encoder, scheduler=build_scheduler(formulation))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def seconds_per_map(pipe: RadioDiffPipeline, steps: int, batch_size: int, repeats: int, size: int) -> float:
    buildings = torch.zeros(batch_size, 1, size, size)
    buildings[:, :, size // 4 : size // 2, size // 4 : size // 2] = 1.0
    transmitters = [(size // 2 + i, size // 8) for i in range(batch_size)]
    generator = torch.Generator().manual_seed(0)
    pipe(buildings, transmitters, num_inference_steps=steps, generator=generator, output_type="pt")  # warm-up
    synchronize = torch.cuda.synchronize if pipe.device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        pipe(buildings, transmitters, num_inference_steps=steps, generator=generator, output_type="pt")
    synchronize()
    return (time.perf_counter() - start) / (repeats * batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256, help="map side in pixels")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row, after one warm-up call")
    args = parser.parse_args()

    print(f"device: {args.device}, torch threads: {torch.get_num_threads()}, preset {args.preset}, "
          f"{args.size}x{args.size} maps, batch {args.batch_size}")
    for preset in PRESETS:
        encoder = build_condition_encoder(preset, downsampling_factor=4)
        counts = {f: parameter_count(build_denoiser(preset, 3, encoder.config.out_channels, f, args.size // 4))
                  for f in ("radiodiff", "flow_matching")}
        print(f"preset {preset}: UNet {counts['radiodiff']:,} (radiodiff) / {counts['flow_matching']:,} "
              f"(flow matching), condition encoder {parameter_count(encoder):,}")
    print("| formulation | steps | UNet calls | s/map |\n|---|---:|---:|---:|")
    for formulation in ("radiodiff", "flow_matching"):
        pipe = build_pipeline(args.preset, formulation, args.size, args.device)
        for steps in args.steps:
            pipe.scheduler.set_timesteps(steps)
            calls = len(pipe.scheduler.timesteps)
            seconds = seconds_per_map(pipe, steps, args.batch_size, args.repeats, args.size)
            print(f"| {formulation} | {steps} | {calls} | {seconds:.3f} |", flush=True)


if __name__ == "__main__":
    main()
