"""How fast `radiodiff report` reads a long log: writes a 1,000,000-line log in our trainer's format to a
temporary folder, parses it, and prints a table.

    PYTHONPATH=. python benchmarks/report_parse.py [--lines 1000000]

Half the steps are past disc_start, so those have a generator and a discriminator line.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from radiodiff.report.analysis import analyse
from radiodiff.report.parse import parse_log

LOG_EVERY = 10


def write_synthetic_log(path: Path, lines: int) -> None:
    generator_steps = lines * 2 // 3
    disc_start = generator_steps // 2 * LOG_EVERY
    planned = generator_steps * LOG_EVERY
    config = {"loss": {"disc_start": disc_start, "disc_weight": 0.5, "kl_weight": 1e-6},
              "train": {"max_steps": planned, "lr": 5e-6, "min_lr": 5e-7, "log_every": LOG_EVERY}}
    written = 1
    with open(path, "w") as log:
        log.write(f"2026-11-24 00:00:00,000 {json.dumps(config)}\n")
        for index in range(generator_steps):
            step = index * LOG_EVERY
            # ten lines a second
            stamp = (f"2026-11-24 {index // 36000:02d}:{index // 600 % 60:02d}:{index // 10 % 60:02d},"
                     f"{index % 10 * 100:03d}")
            rec = 0.02 + 0.01 * math.sin(index / 50)
            active = step >= disc_start
            log.write(
                f"{stamp} [Train Step] {step}/{planned}: train/total_loss: {rec * 65536:.6g}, train/logvar: 0, "
                f"train/kl_loss: {150000 + index % 977:.6g}, train/nll_loss: {rec * 65536:.6g}, "
                f"train/rec_loss: {rec:.6g}, train/d_weight: {5000 if active else 0}, "
                f"train/disc_factor: {int(active)}, train/g_loss: {-0.4 if active else 0}, lr: 5.000e-06, \n"
            )
            written += 1
            if active and written < lines:
                log.write(f"{stamp} [Train Step] {step}/{planned}: train/disc_loss: 0.99, "
                          f"train/logits_real: 0.01, train/logits_fake: -0.02, lr: 5.000e-06, \n")
                written += 1
            if written >= lines:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "2026-11-24-07-00_.log"
        start = time.perf_counter()
        write_synthetic_log(path, args.lines)
        written_s = time.perf_counter() - start
        size_mb = path.stat().st_size / 1e6
        start, start_cpu = time.perf_counter(), time.process_time()
        log = parse_log(path)
        parse_s, parse_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
        start = time.perf_counter()
        analyse(log)
        analyse_s = time.perf_counter() - start
    # CPU time says what the parse costs on a machine shared with other jobs; wall time what a user waits
    print("| log lines | size (MB) | write (s) | parse, wall (s) | parse, CPU (s) | lines/s (CPU) | steps "
          "| analyse (s) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {log.counts.total:,} | {size_mb:.0f} | {written_s:.1f} | {parse_s:.2f} | {parse_cpu_s:.2f} | "
          f"{log.counts.total / parse_cpu_s:,.0f} | {log.steps.size:,} | {analyse_s:.2f} |")


if __name__ == "__main__":
    main()
