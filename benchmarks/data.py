"""Throughput of the data pipeline: the synthetic generator (gain maps/s) and the loader (images/s).

    python benchmarks/data.py [--size 256] [--maps 16] [--tx-per-map 8]

A "map" is one gain map (one transmitter). Generation includes writing the PNGs in RadioMapSeer's layout.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from radiodiff.data import RadioMapSeerDataset, synthesize
from radiodiff.data.splits import SPLITS


def generator_rate(out: Path, maps: int, tx_per_map: int, size: int, workers: int) -> float:
    start = time.perf_counter()
    synthesize(out, maps=maps, tx_per_map=tx_per_map, size=size, seed=0, workers=workers)
    return maps * tx_per_map / (time.perf_counter() - start)


def loader_rate(root: Path, size: int, workers: int) -> float:
    datasets = [RadioMapSeerDataset(root, split, map_size=size, with_conditions=True) for split in SPLITS]
    start, images = time.perf_counter(), 0
    for dataset in datasets:
        for batch in DataLoader(dataset, batch_size=16, num_workers=workers):
            images += len(batch["name"])
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--maps", type=int, default=16, help="cities per run")
    parser.add_argument("--tx-per-map", type=int, default=8)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for workers in (1, 2):
            rate = generator_rate(Path(scratch) / f"w{workers}", args.maps, args.tx_per_map, args.size, workers)
            rows.append((f"generator, {workers} worker(s)", f"{rate:.1f} maps/s"))
        for workers in (0, 2):
            rate = loader_rate(Path(scratch) / "w1", args.size, workers)
            rows.append((f"loader, {workers} DataLoader workers (with conditions)", f"{rate:.0f} images/s"))
    print(f"\n{args.size}x{args.size}, {args.maps} cities x {args.tx_per_map} transmitters\n")
    print(f"| {'what':<48} | {'rate':>14} |\n|{'-' * 50}|{'-' * 16}:|")
    for what, rate in rows:
        print(f"| {what:<48} | {rate:>14} |")


if __name__ == "__main__":
    main()
