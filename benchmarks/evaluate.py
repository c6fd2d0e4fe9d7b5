"""Evaluation throughput: maps per second of ``evaluate_vae`` (encode, decode, all four metrics) for a tiny
and for the paper-size VAE at a few batch sizes, printed as a table on
stdout (progress bars go to stderr).

    python benchmarks/evaluate.py                      # CPU or the first GPU
    python benchmarks/evaluate.py --device cpu --maps 8 --batch-sizes 1 4
"""

from __future__ import annotations

import argparse
import time

import torch

from radiodiff import RadioDiffVAE
from radiodiff.evaluation import default_device, evaluate_vae

MODELS = {
    # name: (block channels, layers per block, norm groups, map size)
    "tiny (8, 16)": ((8, 16), 1, 4, 64),
    "paper (128, 256, 512)": ((128, 256, 512), 2, 32, 256),
}


def radial_maps(count: int, size: int) -> list[dict]:
    grid = torch.linspace(-1, 1, size)
    distance = (grid[None, :] ** 2 + grid[:, None] ** 2).sqrt()
    return [{"gain_map": (1 - distance * (1 + i / count)).clamp(-1, 1)[None], "name": f"0_{i}"} for i in range(count)]


def maps_per_second(vae: RadioDiffVAE, maps: list[dict], batch_size: int, device: str) -> float:
    evaluate_vae(vae, maps[:batch_size], batch_size=batch_size, device=device)  # warm-up: kernels, allocator
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    evaluate_vae(vae, maps, batch_size=batch_size, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(maps) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=str(default_device()))
    parser.add_argument("--maps", type=int, default=16, help="maps per measurement (per model)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()

    print(f"device: {args.device}, torch threads: {torch.get_num_threads()}, {args.maps} maps per row")
    print("| model | map | batch | maps/s |\n|---|---|---|---|")
    for name, (channels, layers, groups, size) in MODELS.items():
        torch.manual_seed(0)
        vae = RadioDiffVAE.from_block_channels(channels, layers_per_block=layers, norm_num_groups=groups,
                                               sample_size=size)
        maps = radial_maps(args.maps, size)
        for batch_size in args.batch_sizes:
            rate = maps_per_second(vae, maps, batch_size, args.device)
            print(f"| {name} | {size}x{size} | {batch_size} | {rate:.3g} |", flush=True)


if __name__ == "__main__":
    main()
