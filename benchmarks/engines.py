"""The fast engine held against Sionna RT on the same cities: maps per second of each, and the fast engine's error.

    python benchmarks/engines.py [--maps 16] [--tx-per-map 4] [--size 256] [--rays 2000000] [--max-depth 3]
        [--threads 1] [--figure docs/engines.png] [--fit]

Both engines' maps are compared as ``radiodiff synth`` writes them (RadioMapSeer's 8-bit encoding, decoded to dB).
A pixel is lit when its gain is above the encoding's floor (-147 dB); the error (fast minus Sionna, dB) is taken
over the street pixels both engines light, and split into line of sight and shadow by the fast engine's ray casting.
The transmitter's own pixel is left out. ``--fit`` also scores a grid of the fast engine's constants against the
same Sionna maps, without changing its defaults.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from radiodiff.data.propagation import (
    GAIN_CEILING_DB,
    GAIN_FLOOR_DB,
    PropagationModel,
    encode_gain,
    path_gain_db,
    prepare_city,
    visible_pixels,
)
from radiodiff.data.raytracing import RaytracingSettings, import_sionna
from radiodiff.data.synthetic import SyntheticMap, generate_map, raytraced_map

REGIONS = ("all", "line of sight", "shadow")


def decoded_db(gain_map: np.ndarray) -> np.ndarray:
    return GAIN_FLOOR_DB + gain_map.astype(np.float64) / 255 * (GAIN_CEILING_DB - GAIN_FLOOR_DB)


class Tally:
    """Pooled over every pixel of every map, per region: squared and signed errors where both engines light a pixel,
    and how many pixels each lights, both light, and both light or leave unlit alike."""

    def __init__(self) -> None:
        counters = ("squared", "signed", "both_lit", "agree", "fast_lit", "sionna_lit", "pixels")
        for name in counters:
            setattr(self, name, dict.fromkeys(REGIONS, 0.0))

    def add(self, fast: np.ndarray, sionna: np.ndarray, buildings: np.ndarray, transmitter: tuple[int, int]) -> None:
        street = ~buildings
        street[transmitter] = False
        line_of_sight = visible_pixels(buildings, transmitter)
        fast_lit, sionna_lit = fast > 0, sionna > 0
        error = decoded_db(fast) - decoded_db(sionna)
        for region, mask in zip(REGIONS, (street, street & line_of_sight, street & ~line_of_sight)):
            both = mask & fast_lit & sionna_lit
            self.squared[region] += float(np.sum(error[both] ** 2))
            self.signed[region] += float(np.sum(error[both]))
            self.both_lit[region] += int(both.sum())
            self.agree[region] += int(np.sum(mask & (fast_lit == sionna_lit)))
            self.fast_lit[region] += int(np.sum(mask & fast_lit))
            self.sionna_lit[region] += int(np.sum(mask & sionna_lit))
            self.pixels[region] += int(mask.sum())

    def row(self, region: str) -> tuple[float, ...]:
        """RMSE dB and bias dB where both lit; shares of the region's pixels: lit by the fast engine, by Sionna, by
        both, and lit or unlit alike."""
        count, pixels = max(self.both_lit[region], 1), max(self.pixels[region], 1)
        shares = (self.fast_lit[region], self.sionna_lit[region], self.both_lit[region], self.agree[region])
        return (np.sqrt(self.squared[region] / count), self.signed[region] / count, *(n / pixels for n in shares))


def compare(fast_maps: list[SyntheticMap], sionna_maps: list[SyntheticMap]) -> Tally:
    tally = Tally()
    for fast, sionna in zip(fast_maps, sionna_maps):
        for tx, transmitter in enumerate(fast.transmitters):
            tally.add(fast.gain_maps[tx], sionna.gain_maps[tx], fast.buildings, (int(transmitter[0]), int(transmitter[1])))
    return tally


def with_model(city: SyntheticMap, model: PropagationModel) -> SyntheticMap:
    prepared = prepare_city(city.buildings)
    gain_maps = np.stack([encode_gain(path_gain_db(prepared, (int(r), int(c)), model)) for r, c in city.transmitters])
    return SyntheticMap(city.map_id, city.buildings, city.transmitters, gain_maps)


def print_table(title: str, tally: Tally) -> None:
    print(f"\n{title}\n")
    print("| street pixels | RMSE (dB) | bias, fast − Sionna (dB) | fast lit | Sionna lit | both lit | lit/unlit agree |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for region in REGIONS:
        rmse, bias, *shares = tally.row(region)
        print(f"| {region} | {rmse:.2f} | {bias:+.2f} | " + " | ".join(f"{share:.1%}" for share in shares) + " |")


def draw(path: Path, fast_maps: list[SyntheticMap], sionna_maps: list[SyntheticMap]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = min(4, len(fast_maps))
    figure, axes = plt.subplots(rows, 4, figsize=(12, 3 * rows), squeeze=False)
    for line, (fast, sionna) in enumerate(zip(fast_maps[:rows], sionna_maps[:rows])):
        fast_map, sionna_map = fast.gain_maps[0], sionna.gain_maps[0]
        both = (fast_map > 0) & (sionna_map > 0)
        difference = np.where(both, decoded_db(fast_map) - decoded_db(sionna_map), np.nan)
        panels = [
            (np.where(fast.buildings, 0, 255), "gray", f"city {fast.map_id}: buildings", None),
            (fast_map, "viridis", "fast engine (DPM)", (0, 255)),
            (sionna_map, "viridis", "Sionna RT", (0, 255)),
            (difference, "RdBu_r", "fast − Sionna (dB), both lit", (-30, 30)),
        ]
        for axis, (image, colours, title, limits) in zip(axes[line], panels):
            shown = axis.imshow(image, cmap=colours, vmin=limits and limits[0], vmax=limits and limits[1])
            row, col = fast.transmitters[0]
            axis.plot(col, row, "r+", markersize=8)
            axis.set_title(title, fontsize=9)
            axis.set_axis_off()
        figure.colorbar(shown, ax=axes[line, 3], fraction=0.046)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=16, help="cities")
    parser.add_argument("--tx-per-map", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rays", type=int, default=RaytracingSettings.samples_per_tx, help="rays per transmitter")
    parser.add_argument("--max-depth", type=int, default=RaytracingSettings.max_depth)
    parser.add_argument("--threads", type=int, default=1, help="Dr.Jit threads")
    parser.add_argument("--figure", type=Path, help="write the 4-city figure here (e.g. docs/engines.png)")
    parser.add_argument("--fit", action="store_true", help="also score a grid of the fast engine's constants")
    args = parser.parse_args()
    settings = RaytracingSettings(samples_per_tx=args.rays, max_depth=args.max_depth)
    city_args = dict(size=args.size, tx_per_map=args.tx_per_map)

    start = time.perf_counter()
    fast_maps = [generate_map(args.seed, map_id, **city_args) for map_id in range(args.maps)]
    fast_seconds = time.perf_counter() - start
    # Dr.Jit compiles its kernels on the first trace: one tiny city first, so that the rate is the steady one
    import_sionna(args.threads)
    raytraced_map(args.seed, 0, 32, 1, RaytracingSettings(samples_per_tx=1000, max_depth=args.max_depth), args.threads)
    start = time.perf_counter()
    sionna_maps = [raytraced_map(args.seed, map_id, settings=settings, threads=args.threads, **city_args)
                   for map_id in range(args.maps)]
    sionna_seconds = time.perf_counter() - start

    maps = args.maps * args.tx_per_map
    print(f"\n{args.size}x{args.size}, {args.maps} cities x {args.tx_per_map} transmitters (seed {args.seed}); Sionna "
          f"{args.rays:,} rays per transmitter, depth {args.max_depth}, {args.threads} Dr.Jit thread(s)\n")
    print("| engine | maps/s | s per map |\n|---|---:|---:|")
    print(f"| fast (dominant path) | {maps / fast_seconds:.2f} | {fast_seconds / maps:.3f} |")
    print(f"| Sionna RT | {maps / sionna_seconds:.3f} | {sionna_seconds / maps:.2f} |")
    print_table("The fast engine against Sionna RT (pixels over all maps)", compare(fast_maps, sionna_maps))

    if args.fit:
        print("\nThe fast engine's constants against the same Sionna maps (defaults: exponent 2.5, wavelength 0.25 m, "
              "softening 1.5 m)\n")
        print("| exponent | wavelength (m) | RMSE all | bias all | RMSE LOS | bias LOS | RMSE shadow | bias shadow |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for exponent, wavelength in itertools.product((1.8, 2.0, 2.2, 2.5), (0.25, 1.0, 4.0)):
            model = PropagationModel(exponent=exponent, diffraction_wavelength_m=wavelength)
            tally = compare([with_model(city, model) for city in sionna_maps], sionna_maps)
            cells = [f"{tally.row(region)[0]:.2f} | {tally.row(region)[1]:+.2f}" for region in REGIONS]
            print(f"| {exponent} | {wavelength} | {' | '.join(cells)} |")
    if args.figure:
        draw(args.figure, fast_maps, sionna_maps)
        print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
