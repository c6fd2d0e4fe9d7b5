"""Learning curves: held-out NMSE against training wall time, for several training configs, in one figure.

    python benchmarks/learning_curves.py --out outputs/learning_curves [--minutes 1 2 4 8 16] [--split test] \\
        --run "RadioUNet configs/radiounet_quickstart.yaml 79" \\
        --run "pixel configs/ldm_pixel_quickstart.yaml 81 [dotted.key=value ...]"

Each ``--run`` is a label, a training config (``train_radiounet.py``'s when its file name says radiounet, else
``train_ldm.py``'s), its step time in ms on idle cores (as ``benchmarks/rival_step.py`` measures it) and config
overrides. For each budget of ``--minutes`` the run trains from scratch for ``minutes * 60,000 / ms`` steps (its
schedule, warm-up and cosine decay included, fitted to that budget: a curve of separately trained runs, not of one
run's checkpoints), in ``OUT/<label>-<minutes>min/``, then ``radiodiff evaluate`` scores its exported pipeline on
``--split`` at the config's own sampling steps. Budgets set by steps make the curve independent of the machine's
load, so runs may share the cores; only the ms per step need idle cores. A budget whose run already holds its
evaluation is not trained again, so an interrupted call resumes. Writes ``OUT/learning_curves.json``, ``.md`` and
``.png`` (log-log, one line per run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    label: str
    config: str
    ms_per_step: float
    overrides: list[str]

    @classmethod
    def parse(cls, text: str) -> "Run":
        label, config, ms_per_step, *overrides = text.split()
        return cls(label, config, float(ms_per_step), overrides)

    @property
    def script(self) -> str:
        return "train_radiounet.py" if "radiounet" in Path(self.config).name else "train_ldm.py"

    def steps(self, minutes: float) -> int:
        return max(1, round(minutes * 60_000 / self.ms_per_step))


def run_command(command: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")


def train_and_score(run: Run, minutes: float, out: Path, split: str) -> dict:
    """Train ``run`` for ``minutes`` of its idle-core steps (unless done) and score it on ``split``."""
    steps = run.steps(minutes)
    output_dir = out / f"{run.label}-{minutes:g}min"
    metrics = output_dir / "evaluation" / f"{split}.json"
    if not metrics.is_file():
        if not (output_dir / "pipeline" / "model_index.json").is_file():
            run_command([sys.executable, run.script, "--config", run.config, *run.overrides,
                         f"output_dir={output_dir}", f"train.max_steps={steps}", f"train.save_every={steps}",
                         f"train.sample_every={steps}", "train.evaluate_at_end=false", "--overwrite"])
        run_command([sys.executable, "-m", "radiodiff", "evaluate", "--model", str(output_dir / "pipeline"),
                     "--split", split, "--out", str(metrics), "--overwrite"])
    model = json.loads(metrics.read_text())["rows"]["model"]["metrics"]
    return {"label": run.label, "minutes": minutes, "steps": steps, "nmse": model["nmse"]["mean"],
            "psnr": model["psnr"]["mean"]}


def write_figure(points: list[dict], path: Path, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for label in dict.fromkeys(point["label"] for point in points):
        curve = [point for point in points if point["label"] == label]
        axes.plot([p["minutes"] for p in curve], [p["nmse"] for p in curve], marker="o", label=label)
    axes.set(xscale="log", yscale="log", xlabel="training time (min, 2 idle CPU cores)",
             ylabel=f"NMSE ({split} split)", title="Held-out NMSE against training time")
    minutes = sorted({point["minutes"] for point in points})
    axes.set_xticks(minutes, [f"{m:g}" for m in minutes])
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # the budgets label the axis, not 3x10^0
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, type=Run.parse,
                        help='"LABEL CONFIG MS_PER_STEP [dotted.key=value ...]" (repeat)')
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    points = [train_and_score(run, minutes, args.out.resolve(), args.split) for minutes in args.minutes for run in args.run]
    (args.out / "learning_curves.json").write_text(json.dumps(points, indent=2) + "\n")
    labels = list(dict.fromkeys(point["label"] for point in points))
    lines = ["| minutes | " + " | ".join(f"{label} (steps, NMSE)" for label in labels) + " |",
             "|---:|" + "---:|" * len(labels)]
    for minutes in args.minutes:
        cells = [next(f"{p['steps']:,}, {p['nmse']:.4f}" for p in points if p["label"] == label and p["minutes"] == minutes)
                 for label in labels]
        lines.append(f"| {minutes:g} | " + " | ".join(cells) + " |")
    (args.out / "learning_curves.md").write_text("\n".join(lines) + "\n")
    write_figure(points, args.out / "learning_curves.png", args.split)
    print("\n".join(lines))
    print(f"wrote {args.out / 'learning_curves.png'}")


if __name__ == "__main__":
    main()
