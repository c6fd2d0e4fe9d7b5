"""Training-step time of the quickstart's rivals side by side: RadioUNet against the second stage's configs.

    python benchmarks/rival_step.py [--steps 30] [--warmup 5] [--budget-s 300] [--reference-ms 79]
                                    [--config "configs/radiounet_quickstart.yaml [dotted.key=value ...]" ...]

Builds the real trainer of each ``--config`` (a config file and its overrides in one argument; by default
RadioUNet's and the pixel-space second stage's quickstarts): ``train_radiounet.py``'s or ``train_ldm.py``'s, on the
config's own synthetic maps (a latent second stage needs its ``vae.path``), all in this one process; then it times their real training
steps (:meth:`Trainer.train_step`, the code a run executes, minus checkpoints, samples and logs) in turn, round
after round, so that every config sees the same load. It prints the median ms per step, each config's ratio to the
first one's, and the steps that fit ``--budget-s`` of training if the first config's step takes ``--reference-ms``
(its step measured on idle cores): how the quickstart's step budgets for equal training time were set.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from train_step import trainer_step

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ("configs/radiounet_quickstart.yaml", "configs/ldm_pixel_quickstart.yaml")


def build_trainer(config: str, scratch: Path):
    """The trainer a training script would build for ``config`` (a file and its overrides), writing into ``scratch``."""
    from radiodiff.config import read_ldm_config, read_radiounet_config
    from radiodiff.data import prepare_data
    from radiodiff.training.ldm_trainer import build_ldm_trainer
    from radiodiff.training.radiounet_trainer import build_radiounet_trainer

    config_path, *overrides = config.split()
    radiounet = "radiounet" in Path(config_path).name
    read = read_radiounet_config if radiounet else read_ldm_config
    settings = read(REPO / config_path, [*overrides, f"output_dir={scratch}"])[0]
    prepare_data(settings.data)
    return (build_radiounet_trainer if radiounet else build_ldm_trainer)(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", dest="configs",
                        help="a config file and its overrides (repeat; the first is the reference)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per config")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--reference-ms", type=float, default=79.0,
                        help="the first config's ms per step on idle cores (configs/radiounet_quickstart.yaml's note)")
    args = parser.parse_args()

    configs = args.configs or list(DEFAULT_CONFIGS)
    with tempfile.TemporaryDirectory() as scratch:
        steps = [trainer_step(build_trainer(name, Path(scratch) / str(index)))[0] for index, name in enumerate(configs)]
        for _ in range(args.warmup):
            for step in steps:
                step()
        times: list[list[float]] = [[] for _ in configs]
        for _ in range(args.steps):
            for index, step in enumerate(steps):
                start = time.perf_counter()
                step()
                times[index].append(time.perf_counter() - start)
    medians = [1000 * statistics.median(column) for column in times]
    print(f"| config | ms/step | x the first | steps in {args.budget_s:g} s at {args.reference_ms:g} ms x ratio |")
    print("|---|---:|---:|---:|")
    for name, median in zip(configs, medians):
        ratio = median / medians[0]
        print(f"| {name} | {median:.1f} | {ratio:.2f} | {int(args.budget_s * 1000 / (args.reference_ms * ratio)):,} |")


if __name__ == "__main__":
    main()
