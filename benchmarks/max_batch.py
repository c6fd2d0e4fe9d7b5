"""The largest training batch that fits on the device, for a config at a map size: a small search.

    python benchmarks/max_batch.py --config configs/radiodiff_vae.yaml --size 256 [--variant bf16] [--limit 512]

Two measured steps (batch ``--start`` and twice that, each in its own process as ``train_step.py`` runs them) give
the peak memory's cost per image and its fixed part; the batch that fills ``--fill`` of the device's memory is
then tried, shrinking by a quarter (at most ``--tries`` times) until a step runs. Bounded by ``--limit``. The last
line printed is the batch (``0`` when not even ``--start`` fits).
"""

from __future__ import annotations

import argparse
import os

from train_step import REPO, VARIANTS, run_variant


def device_memory_mib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / 2**20
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(batch: int, args: argparse.Namespace) -> dict:
    """One warm-up and one timed step at ``batch`` in a fresh process (train_step.py's row, or its error)."""
    step_args = argparse.Namespace(config=args.config, size=args.size, batch_size=batch, steps=1, warmup=1,
                                   overrides=args.overrides)
    return run_variant(args.variant, step_args)


def estimate(points: dict[int, float], memory_mib: float, fill: float) -> int:
    """The batch whose linearly extrapolated peak memory fills ``fill`` of ``memory_mib``; even, at least 2."""
    (small, small_mib), (large, large_mib) = sorted(points.items())
    per_image = max((large_mib - small_mib) / (large - small), 1e-3)
    fixed = small_mib - per_image * small
    return max(2, int((fill * memory_mib - fixed) / per_image) // 2 * 2)


def largest_batch(args: argparse.Namespace) -> int:
    points = {}
    for batch in (args.start, 2 * args.start):
        row = measure(batch, args)
        if "error" in row:
            print(f"batch {batch}: {row['error']}")
            return args.start if batch > args.start else 0
        points[batch] = row["peak_memory_mib"]
        print(f"batch {batch}: {row['peak_memory_mib']:.0f} MiB peak, {row['images_per_s']:.3g} images/s")
    candidate = min(args.limit, estimate(points, device_memory_mib(), args.fill))
    for _ in range(args.tries):
        if candidate <= 2 * args.start:
            return 2 * args.start
        row = measure(candidate, args)
        if "error" not in row:
            print(f"batch {candidate}: {row['peak_memory_mib']:.0f} MiB peak, {row['images_per_s']:.3g} images/s")
            return candidate
        print(f"batch {candidate}: {row['error']}")
        candidate = candidate * 3 // 4 // 2 * 2
    return 2 * args.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "radiodiff_vae.yaml"))
    parser.add_argument("--size", type=int, default=256, help="map side in pixels")
    parser.add_argument("--variant", default="bf16", choices=sorted(VARIANTS))
    parser.add_argument("--start", type=int, default=2, help="the first measured batch (the second is twice it)")
    parser.add_argument("--limit", type=int, default=512, help="never try more than this")
    parser.add_argument("--fill", type=float, default=0.85, help="the fraction of device memory to aim for")
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="config overrides (dotted.key=value)")
    args = parser.parse_args()
    print(largest_batch(args))


if __name__ == "__main__":
    main()
