"""Sampling speed of RadioDiffPipeline: seconds per 256x256 radio map at 1, 5 and 20 steps, both formulations side
by side in one run, with random-weight components (the tiny preset and the quickstart-size 4x VAE by default).
Also prints the parameter counts of the presets, and on a GPU the model FLOPs per map and the fraction of the
device's peak they reach (``benchmarks/flops.py`` counts them, attention included).

    python benchmarks/sampling.py                                   # CPU or the first GPU
    python benchmarks/sampling.py --preset paper --vae paper --device cuda --batch-size 8 --dtype bf16 --compile
"""

from __future__ import annotations

import argparse
import time

import torch

from flops import flop_counter_mode
from radiodiff.config import load_vae_config
from radiodiff.models import PRESETS, RadioDiffVAE, build_condition_encoder, build_denoiser
from radiodiff.pipelines import RadioDiffPipeline
from radiodiff.schedulers import build_formulation
from train_step import REPO, gpu_peak_tflops

# the quickstart's VAE (configs/quickstart.yaml): 3 levels, 4x downsampling, a 3x64x64 latent for a 256x256 map
QUICKSTART_VAE = dict(block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8)
FORMULATIONS = ("radiodiff", "flow_matching")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_vae(vae: str, size: int) -> RadioDiffVAE:
    if vae == "paper":  # the first stage of configs/radiodiff_vae.yaml
        return RadioDiffVAE.from_block_channels(
            **load_vae_config(REPO / "configs" / "radiodiff_vae.yaml").model.architecture(), sample_size=size
        )
    return RadioDiffVAE.from_block_channels(sample_size=size, **QUICKSTART_VAE)


def build_pipeline(preset: str, vae: str, formulation: str, size: int, device: str, dtype: str,
                   compile_unet: bool) -> RadioDiffPipeline:
    torch.manual_seed(0)
    first_stage = build_vae(vae, size)
    encoder = build_condition_encoder(preset, downsampling_factor=first_stage.downsampling_factor)
    latent_size = size // first_stage.downsampling_factor
    formulation = build_formulation(formulation)
    unet = build_denoiser(preset, first_stage.config.latent_channels, encoder.config.out_channels,
                          formulation.outputs_per_latent_channel(), latent_size)
    pipe = RadioDiffPipeline(vae=first_stage, unet=unet, condition_encoder=encoder, scheduler=formulation.scheduler)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    if dtype != "fp32":
        pipe.to(dtype=DTYPES[dtype])
    if compile_unet:
        pipe.unet.compile()  # in place: the denoiser is where sampling spends its steps
    return pipe


def conditions(batch_size: int, size: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    buildings = torch.zeros(batch_size, 1, size, size)
    buildings[:, :, size // 4 : size // 2, size // 4 : size // 2] = 1.0
    return buildings, [(size // 2 + i, size // 8) for i in range(batch_size)]


def seconds_per_map(pipe: RadioDiffPipeline, steps: int, batch_size: int, repeats: int, size: int) -> float:
    buildings, transmitters = conditions(batch_size, size)
    generator = torch.Generator().manual_seed(0)
    pipe(buildings, transmitters, num_inference_steps=steps, generator=generator, output_type="pt")  # warm-up
    synchronize = torch.cuda.synchronize if pipe.device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        pipe(buildings, transmitters, num_inference_steps=steps, generator=generator, output_type="pt")
    synchronize()
    return (time.perf_counter() - start) / (repeats * batch_size)


def flops_per_map(pipe: RadioDiffPipeline, steps: int, size: int) -> int:
    """The model FLOPs of one map (batch 1): condition encoder, every denoiser call, the VAE decoder."""
    buildings, transmitters = conditions(1, size)
    with flop_counter_mode() as counter:
        pipe(buildings, transmitters, num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
             output_type="pt")
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="the denoiser's size")
    parser.add_argument("--vae", default="quickstart", choices=["quickstart", "paper"], help="the first stage's size")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="weights and activations")
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoiser")
    parser.add_argument("--size", type=int, default=256, help="map side in pixels")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row, after one warm-up call")
    args = parser.parse_args()

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"device: {device_name}, torch threads: {torch.get_num_threads()}, preset {args.preset}, VAE {args.vae}, "
          f"{args.dtype}{', compiled denoiser' if args.compile else ''}, {args.size}x{args.size} maps, "
          f"batch {args.batch_size}, {args.repeats} timed calls per cell")
    for preset in PRESETS:
        encoder = build_condition_encoder(preset, downsampling_factor=4)
        counts = {f: parameter_count(build_denoiser(preset, 3, encoder.config.out_channels,
                                                    build_formulation(f).outputs_per_latent_channel(), args.size // 4))
                  for f in FORMULATIONS}
        print(f"preset {preset}: UNet {counts['radiodiff']:,} (radiodiff) / {counts['flow_matching']:,} "
              f"(flow matching), condition encoder {parameter_count(encoder):,}")
    peak = gpu_peak_tflops(device_name, args.dtype) if args.device.startswith("cuda") else None
    middle = args.steps[len(args.steps) // 2]
    header = " | ".join(f"s/map, {steps} step{'s' if steps > 1 else ''} (NFE)" for steps in args.steps)
    print(f"\n| formulation | {header} | GFLOP/map at {middle} | of peak at {middle} |")
    print("|---|" + "---:|" * (len(args.steps) + 2))
    for formulation in FORMULATIONS:
        pipe = build_pipeline(args.preset, args.vae, formulation, args.size, args.device, args.dtype, args.compile)
        cells, seconds = [], {}
        for steps in args.steps:
            pipe.scheduler.set_timesteps(steps)
            calls = len(pipe.scheduler.timesteps)
            seconds[steps] = seconds_per_map(pipe, steps, args.batch_size, args.repeats, args.size)
            cells.append(f"{seconds[steps]:.4f} ({calls})")
        # a compiled graph hides its ops from the counter
        flops = None if args.compile else flops_per_map(pipe, middle, args.size)
        fraction = flops / seconds[middle] / 1e12 / peak if flops and peak else None
        print(f"| {formulation} | {' | '.join(cells)} | {'—' if flops is None else f'{flops / 1e9:.3g}'} "
              f"| {'—' if fraction is None else f'{100 * fraction:.1f} %'} |", flush=True)


if __name__ == "__main__":
    main()
