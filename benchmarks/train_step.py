"""Speed of the real training step (generator and discriminator updates, discriminator active) per variant.

    python benchmarks/train_step.py [--config configs/quickstart.yaml] [--batch-size 6] [--size 64]
                                    [--steps 10] [--warmup 2] [--variants default,fp32,bf16,...]
                                    [dotted.key=value ...]

Each variant runs in its own process: it builds a :class:`radiodiff.training.Trainer` from the config (on
synthetic maps of ``--size`` pixels, ``loss.disc_start=0``) and calls ``Trainer.train_step`` — the code a run
executes, minus checkpoints, samples and logs. Batches come from the trainer's own loader, read ahead of the
timing (``benchmarks/data.py`` measures the loader). After ``--warmup`` steps it alternates one timed training
step with one timed bare VAE forward+backward of the same batch (no loss, no discriminator, no optimizer), so
the ratio step / bare VAE — the cost of the discriminator, the loss and the bookkeeping — is measured under the
same load. Times are medians. FLOPs are the model FLOPs of one step, counted with ``torch.utils.flop_counter``
and CPU attention's formula (``benchmarks/flops.py``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]

# each variant is a set of config overrides on top of the benchmarked config
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "fp32": ["train.mixed_precision='no'"],
    "bf16": ["train.mixed_precision=bf16"],
    "unfused": ["train.fused_optimizer=false"],
    "channels_last": ["train.channels_last=true"],
    "compile": ["train.compile=true"],
    "bf16_compile": ["train.mixed_precision=bf16", "train.compile=true"],
    "checkpointing": ["train.gradient_checkpointing=true"],
}
DEFAULT_VARIANTS = "default,fp32,bf16,unfused,channels_last,checkpointing"

# dense peak TFLOP/s by device name: fp32 (with TF32 matmuls when allowed) and bf16
GPU_PEAK_TFLOPS = {
    "H200": {"fp32": 494.7, "bf16": 989.4},
    "H100 SXM": {"fp32": 494.7, "bf16": 989.4},
    "H100 80GB HBM3": {"fp32": 494.7, "bf16": 989.4},
    "H100 PCIe": {"fp32": 378.0, "bf16": 756.0},
    "A100": {"fp32": 156.0, "bf16": 312.0},
    "L4": {"fp32": 60.0, "bf16": 121.0},
}


def gpu_peak_tflops(device_name: str, precision: str) -> float | None:
    for name, peaks in GPU_PEAK_TFLOPS.items():
        if name in device_name:
            return peaks["bf16" if precision == "bf16" else "fp32"]
    return None


def current_rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(function: Callable[[], None], synchronize: Callable[[], None]) -> float:
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - start


def trainer_step(trainer) -> tuple[Callable[[], None], list[dict]]:
    """A stage trainer's real step, cycling over a few batches read ahead from its own loader, and those batches."""
    loaded = list(itertools.islice(trainer.micro_batches(), 4 * trainer.config.train.gradient_accumulation_steps))
    batches = itertools.cycle(loaded)

    def training_step() -> None:
        if trainer.train_step(batches) is None:
            raise RuntimeError("the benchmarked step was skipped: its loss was not finite")
        trainer.state.step += 1

    return training_step, loaded


def timed_pairs(
    step: Callable[[], None],
    bare: Callable[[], None],
    args: argparse.Namespace,
    synchronize: Callable[[], None],
    after_warmup: Callable[[], None] | None = None,
) -> tuple[list[float], list[float]]:
    """``args.warmup`` untimed pairs, then ``args.steps`` timed ones: each ``step`` followed by a ``bare``, so
    that both see the same load."""
    for _ in range(args.warmup):
        step()
        bare()
    if after_warmup is not None:
        after_warmup()
    step_s, bare_s = [], []
    for _ in range(args.steps):
        step_s.append(timed(step, synchronize))
        bare_s.append(timed(bare, synchronize))
    return step_s, bare_s


def measure_step(
    training_step: Callable[[], None], bare_step: Callable[[], None], args: argparse.Namespace, config, rss_before: int
) -> dict:
    """Time ``training_step`` against ``bare_step`` (medians), then count one step's model FLOPs (eager only: a
    compiled graph hides its ops from the counter); the row's columns but the model's parameter count."""
    import torch
    from flops import flop_counter_mode

    cuda = torch.cuda.is_available()
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    step_s, bare_s = timed_pairs(
        training_step, bare_step, args, synchronize, after_warmup=torch.cuda.reset_peak_memory_stats if cuda else None
    )
    peak_memory = (
        torch.cuda.max_memory_allocated()
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    )
    flops = None
    if not config.train.compile:
        with flop_counter_mode() as counter:
            training_step()
        flops = counter.get_total_flops()
    step_median = statistics.median(step_s)
    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    peak = gpu_peak_tflops(device_name, config.train.mixed_precision) if cuda else None
    achieved = flops / step_median / 1e12 if flops else None
    return {
        "device": device_name,
        "ms_per_step": 1e3 * step_median,
        "images_per_s": config.train.batch_size * config.train.gradient_accumulation_steps / step_median,
        "peak_memory_mib": peak_memory / 2**20,
        "gflop_per_step": flops / 1e9 if flops else None,
        "achieved_tflops": achieved,
        "fraction_of_peak": achieved / peak if achieved and peak else None,
        "bare_ms": 1e3 * statistics.median(bare_s),
        "ratio": step_median / statistics.median(bare_s),
    }


def measure_variant(config_path: str | None, overrides: list[str], args: argparse.Namespace, scratch: str) -> dict:
    """Build a trainer for one variant and time its step against a bare VAE forward+backward; returns a row."""
    from radiodiff.config import load_vae_config
    from radiodiff.data import prepare_data
    from radiodiff.training.vae_trainer import build_vae_trainer

    config = load_vae_config(config_path, [
        f"output_dir={scratch}",
        "data.source=synthetic",
        f"data.synthetic.size={args.size}",
        f"data.synthetic.maps={max(8, args.batch_size)}",  # x2 transmitters: the training split holds a batch
        "data.synthetic.tx_per_map=2",
        f"train.batch_size={args.batch_size}",
        "train.num_sample_images=1",
        "loss.disc_start=0",
        *overrides,
    ])
    prepare_data(config.data)  # generated here, so that the memory measured below is the trainer's
    rss_before = current_rss_bytes()

    trainer = build_vae_trainer(config)
    training_step, loaded = trainer_step(trainer)

    def bare_vae_step() -> None:
        gain_map = loaded[0]["gain_map"]
        reconstruction = trainer.vae(gain_map, sample_posterior=True).sample
        trainer.accelerator.backward((reconstruction.float() - gain_map).abs().mean())
        trainer.vae.zero_grad(set_to_none=True)

    row = measure_step(training_step, bare_vae_step, args, config, rss_before)
    return {
        **row,
        "vae_parameters": sum(p.numel() for p in trainer.raw_vae.parameters()),
    }


def run_variant(variant: str, args: argparse.Namespace, script: str = __file__, options: tuple[str, ...] = ()) -> dict:
    """One variant in a fresh process of ``script`` (this benchmark's, or another that shares its options
    plus ``options``): accelerate's state, compile caches and peak memory start clean."""
    command = [sys.executable, script, "--one-variant", variant, "--batch-size", str(args.batch_size),
               "--size", str(args.size), "--steps", str(args.steps), "--warmup", str(args.warmup), *options,
               *args.overrides]
    if args.config:
        command += ["--config", args.config]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_variants(
    parser: argparse.ArgumentParser, args: argparse.Namespace, known: dict, run: Callable[[str, argparse.Namespace], dict]
) -> dict[str, dict]:
    """``run`` each variant of ``--variants`` (names of ``known``), one after the other; their rows by name."""
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in variants if name not in known]
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; expected some of {', '.join(known)}")
    rows = {}
    for variant in variants:
        rows[variant] = run(variant, args)
        print(f"{variant}: done", file=sys.stderr)
    return rows


def format_row(variant: str, row: dict) -> str:
    if "error" in row:
        return f"| {variant:<14} | failed: {row['error']} |"

    def number(key: str, pattern: str) -> str:
        return "—" if row[key] is None else format(row[key], pattern)

    fraction = "—" if row["fraction_of_peak"] is None else f"{100 * row['fraction_of_peak']:.1f} %"
    return (
        f"| {variant:<14} | {row['ms_per_step']:9.1f} | {row['images_per_s']:8.3g} | {row['peak_memory_mib']:9.0f} "
        f"| {number('gflop_per_step', '.1f'):>9} | {number('achieved_tflops', '.3f'):>8} | {fraction:>7} "
        f"| {row['bare_ms']:9.1f} | {row['ratio']:10.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "quickstart.yaml"))
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--size", type=int, default=64, help="map side in pixels")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (each paired with a bare VAE step)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--one-variant", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="config overrides (dotted.key=value) for every variant")
    args = parser.parse_args()

    if args.one_variant:
        with tempfile.TemporaryDirectory(prefix="radiodiff-bench-") as scratch:  # the trainer's output_dir
            print(json.dumps(measure_variant(args.config, args.overrides + VARIANTS[args.one_variant], args, scratch)))
        return
    rows = run_variants(parser, args, VARIANTS, run_variant)
    measured = [row for row in rows.values() if "error" not in row]
    device = measured[0]["device"] if measured else "?"
    parameters = f"{measured[0]['vae_parameters'] / 1e6:.1f}M-parameter VAE, " if measured else ""
    print(f"\n{Path(args.config).name}: {parameters}{args.size}x{args.size}, batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup} warm-up, on {device}; load average {os.getloadavg()[0]:.1f}\n")
    print("| variant        |  ms/step | images/s | peak MiB | GFLOP/step | TFLOP/s | of peak | bare VAE ms | step / bare |")
    print("|----------------|---------:|---------:|---------:|-----------:|--------:|--------:|------------:|------------:|")
    for variant, row in rows.items():
        print(format_row(variant, row))


if __name__ == "__main__":
    main()
