"""The fast engine held against Sionna RT on the same cities: maps per second of each, and the fast engine's error.

    python benchmarks/engines.py [--maps 16] [--tx-per-map 4] [--size 256] [--rays 2000000] [--max-depth 3]
        [--threads 1] [--figure docs/engines.png] [--fit]
    python benchmarks/engines.py --sionna-folder data/sionna-quickstart [--maps N] [--fit]

With ``--sionna-folder`` the Sionna maps are read from a folder ``radiodiff synth --engine sionna`` wrote (its
``gain/SionnaRT/synth.json`` gives the seed, size and transmitters per map; every city there, or the first
``--maps``) instead of traced, and no rates are printed.

Both engines' maps are compared as ``radiodiff synth`` writes them (RadioMapSeer's 8-bit encoding, decoded to dB).
A pixel is lit when its gain is above the encoding's floor (-147 dB); the error (fast minus Sionna, dB) is taken
over the street pixels both engines light, and split into line of sight and shadow by the fast engine's ray casting.
The transmitter's own pixel is left out. The fast engine is scored with its defaults and with generator version 1's
constants (before they were fitted to these maps); ``--fit`` also scores a grid of its constants (exponent, knife-edge
wavelength, shadow softening) against the same Sionna maps, without changing its defaults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from radiodiff.data.propagation import (
    GAIN_CEILING_DB,
    GAIN_FLOOR_DB,
    City,
    PropagationModel,
    prepare_city,
    visible_pixels,
)
from radiodiff.data.raytracing import RaytracingSettings, import_sionna
from radiodiff.data.synthetic import (
    CITY_LAYOUT_VERSION,
    SIMULATION,
    SyntheticMap,
    city_is_written,
    city_layout,
    fast_gain_maps,
    generate_map,
    raytraced_map,
)

REGIONS = ("all", "line of sight", "shadow")
# the constants of generator version 1 (fitted to RadioMapSeer's DPM maps), for the before-and-after tables
VERSION_1 = PropagationModel(exponent=2.5, diffraction_wavelength_m=0.25, edge_softening_m=1.5)


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


def read_sionna_folder(root: Path, maps: int | None) -> tuple[dict, list[SyntheticMap]]:
    """The ray-traced cities of ``root`` (complete ones, in order, at most ``maps``) and the record they were made with."""
    from PIL import Image

    record_path = root / "gain" / SIMULATION / "synth.json"
    if not record_path.is_file():
        raise SystemExit(f"error: {record_path}: not found; --sionna-folder takes a folder of radiodiff synth --engine sionna")
    record = json.loads(record_path.read_text())
    if record.get("generator_version") != CITY_LAYOUT_VERSION:
        raise SystemExit(f"error: {record_path}: its cities are of layout version {record.get('generator_version')}, "
                         f"this code draws version {CITY_LAYOUT_VERSION}'s")
    cities = []
    gain_folder = root / "gain" / SIMULATION
    for map_id in itertools.count():
        if (maps is not None and map_id >= maps) or not city_is_written(gain_folder, map_id, record["tx_per_map"]):
            break
        buildings, transmitters = city_layout(record["seed"], map_id, record["size"], record["tx_per_map"])
        gain_maps = np.stack([np.asarray(Image.open(gain_folder / f"{map_id}_{tx}.png"))
                              for tx in range(record["tx_per_map"])])
        cities.append(SyntheticMap(map_id, buildings, transmitters, gain_maps))
    if not cities:
        raise SystemExit(f"error: {gain_folder}: no complete city (map 0's gain maps are missing)")
    return record, cities


def with_model(city: SyntheticMap, prepared: City, model: PropagationModel) -> SyntheticMap:
    """``city`` with the fast engine's maps under ``model``; ``prepared`` is ``prepare_city(city.buildings)``."""
    return SyntheticMap(city.map_id, city.buildings, city.transmitters, fast_gain_maps(prepared, city.transmitters, model))


def describe(model: PropagationModel) -> str:
    return (f"exponent {model.exponent:g}, wavelength {model.diffraction_wavelength_m:g} m, "
            f"softening {model.edge_softening_m:g} m")


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
            (fast_map, "viridis", "fast engine", (0, 255)),
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


def trace_and_time(args: argparse.Namespace) -> tuple[list[SyntheticMap], list[SyntheticMap]]:
    """Both engines' maps of ``args.maps`` cities, and a table of each engine's rate."""
    settings = RaytracingSettings(samples_per_tx=args.rays, max_depth=args.max_depth)
    cities = args.maps or 16
    city_args = dict(size=args.size, tx_per_map=args.tx_per_map)

    start = time.perf_counter()
    fast_maps = [generate_map(args.seed, map_id, **city_args) for map_id in range(cities)]
    fast_seconds = time.perf_counter() - start
    # Dr.Jit compiles its kernels on the first trace: one tiny city first, so that the rate is the steady one
    import_sionna(args.threads)
    raytraced_map(args.seed, 0, 32, 1, RaytracingSettings(samples_per_tx=1000, max_depth=args.max_depth), args.threads)
    start = time.perf_counter()
    sionna_maps = [raytraced_map(args.seed, map_id, settings=settings, threads=args.threads, **city_args)
                   for map_id in range(cities)]
    sionna_seconds = time.perf_counter() - start

    maps = cities * args.tx_per_map
    print(f"\n{args.size}x{args.size}, {cities} cities x {args.tx_per_map} transmitters (seed {args.seed}); Sionna "
          f"{args.rays:,} rays per transmitter, depth {args.max_depth}, {args.threads} Dr.Jit thread(s)\n")
    print("| engine | maps/s | s per map |\n|---|---:|---:|")
    print(f"| fast (dominant path) | {maps / fast_seconds:.2f} | {fast_seconds / maps:.3f} |")
    print(f"| Sionna RT | {maps / sionna_seconds:.3f} | {sionna_seconds / maps:.2f} |")
    return fast_maps, sionna_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=None, help="cities (default 16, or every city of --sionna-folder)")
    parser.add_argument("--tx-per-map", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rays", type=int, default=RaytracingSettings.samples_per_tx, help="rays per transmitter")
    parser.add_argument("--max-depth", type=int, default=RaytracingSettings.max_depth)
    parser.add_argument("--threads", type=int, default=1, help="Dr.Jit threads")
    parser.add_argument("--figure", type=Path, help="write the 4-city figure here (e.g. docs/engines.png)")
    parser.add_argument("--fit", action="store_true", help="also score a grid of the fast engine's constants")
    parser.add_argument("--sionna-folder", type=Path, help="read the Sionna maps from this synth folder instead of tracing")
    args = parser.parse_args()
    defaults = PropagationModel()
    if args.sionna_folder:
        record, sionna_maps = read_sionna_folder(args.sionna_folder, args.maps)
        prepared = [prepare_city(city.buildings) for city in sionna_maps]
        fast_maps = [with_model(city, ready, defaults) for city, ready in zip(sionna_maps, prepared)]
        print(f"\n{record['size']}x{record['size']}, {len(sionna_maps)} cities x {record['tx_per_map']} transmitters "
              f"(seed {record['seed']}); Sionna maps read from {args.sionna_folder} ({record['samples_per_tx']:,} rays "
              f"per transmitter, depth {record['max_depth']})")
    else:
        fast_maps, sionna_maps = trace_and_time(args)
        prepared = [prepare_city(city.buildings) for city in sionna_maps]

    def scored(model: PropagationModel) -> Tally:
        return compare([with_model(city, ready, model) for city, ready in zip(sionna_maps, prepared)], sionna_maps)

    print_table(f"The fast engine against Sionna RT (pixels over all maps): {describe(defaults)}, the defaults",
                compare(fast_maps, sionna_maps))
    print_table(f"The same with generator version 1's constants: {describe(VERSION_1)}",
                scored(VERSION_1))

    if args.fit:
        print(f"\nThe fast engine's constants against the same Sionna maps (defaults: {describe(defaults)})\n")
        print("| exponent | wavelength (m) | softening (m) | RMSE all | bias all | RMSE LOS | bias LOS | RMSE shadow | "
              "bias shadow |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        grid = [(exponent, wavelength, defaults.edge_softening_m)
                for exponent, wavelength in itertools.product((1.8, 1.9, 2.0, 2.2, 2.5), (0.25, 0.5, 1.0, 2.0, 4.0))]
        grid += [(defaults.exponent, defaults.diffraction_wavelength_m, softening) for softening in (0.0, 0.75, 3.0, 6.0)]
        for exponent, wavelength, softening in grid:
            model = PropagationModel(exponent=exponent, diffraction_wavelength_m=wavelength, edge_softening_m=softening)
            tally = scored(model)
            cells = [f"{tally.row(region)[0]:.2f} | {tally.row(region)[1]:+.2f}" for region in REGIONS]
            print(f"| {exponent} | {wavelength} | {softening} | {' | '.join(cells)} |")
    if args.figure:
        draw(args.figure, fast_maps, sionna_maps)
        print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
