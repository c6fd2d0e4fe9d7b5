"""Small training logs written exactly as our trainer writes them, healthy or with one thing wrong.

Format: Python logging ``'%(asctime)-15s %(message)s'``; the resolved config as one JSON line; a generator line
every ``log_every`` steps with values as ``{:.6g}`` and ``lr`` as ``{:.3e}``; from ``disc_start`` on a
discriminator line with the same step.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# the original trainer's log, shipped with the tests (see fixtures/README.md)
FIXTURE_LOG = REPO_ROOT / "tests" / "fixtures" / "radiodiff_vae_2025-08-15-20-41_.log"

CONFIG = {
    "output_dir": "outputs/tiny",
    "model": {"block_out_channels": [8, 16], "norm_num_groups": 4, "latent_channels": 3},
    "discriminator": {"ndf": 8, "n_layers": 2},
    "loss": {"kl_weight": 1e-6, "disc_weight": 0.5, "disc_start": 1001, "disc_factor": 1.0},
    "data": {"source": "synthetic", "resolution": 32},
    "train": {"max_steps": 2000, "batch_size": 2, "lr": 5e-6, "min_lr": 5e-7, "log_every": 100, "sample_every": 500},
}
GENERATOR_KEYS = ("total_loss", "logvar", "kl_loss", "nll_loss", "rec_loss", "d_weight", "disc_factor", "g_loss")
PIXELS = 32 * 32
START = datetime(2026, 11, 24, 7, 12, 3, 123000)
SECONDS_PER_STEP = 0.5


def healthy_steps(config: dict = CONFIG) -> list[dict]:
    """One dict per logged step of a run that goes well: reconstruction falls, the discriminator learns, the
    adaptive weight moves, the learning rate decays from lr to min_lr."""
    train, loss = config["train"], config["loss"]
    steps = []
    for step in range(train["log_every"], train["max_steps"] + 1, train["log_every"]):
        progress = step / train["max_steps"]
        active = step >= loss["disc_start"]
        rec = 0.05 - 0.03 * progress + 0.002 * math.sin(step / 70)
        kl = 1000 + 200 * progress
        d_weight = 0.4 + 0.2 * math.sin(step / 130) if active else 0.0
        g_loss = 0.3 + 0.1 * math.cos(step / 90) if active else 0.0
        steps.append({
            "step": step,
            "rec_loss": rec, "nll_loss": rec * PIXELS, "kl_loss": kl, "logvar": 0.0,
            "d_weight": d_weight, "disc_factor": float(active), "g_loss": g_loss,
            "lr": train["lr"] + (train["min_lr"] - train["lr"]) * progress,
            "disc_loss": 1.0 - 0.3 * progress + 0.05 * math.sin(step / 50) if active else None,
            "logits_real": 0.2 * progress if active else None,
            "logits_fake": -0.2 * progress if active else None,
        })
    return steps


def with_total(row: dict, kl_weight: float = CONFIG["loss"]["kl_weight"]) -> dict:
    """The row with ``total_loss`` as the loss computes it."""
    total = row["nll_loss"] + kl_weight * row["kl_loss"] + row["d_weight"] * row["disc_factor"] * row["g_loss"]
    return {**row, "total_loss": total}


def config_with(**sections: dict) -> dict:
    """CONFIG with some keys of some sections replaced: ``config_with(train={"max_steps": 500})``."""
    config = copy.deepcopy(CONFIG)
    for section, values in sections.items():
        config[section].update(values)
    return config


class LogWriter:
    """Writes lines as our trainer's logger does: a timestamp, a space, the message."""

    def __init__(self, path: Path, lr_format: str = "{:.3e}"):
        self.path = path
        self.lr_format = lr_format
        self.lines: list[str] = []
        # added to every timestamp: a resumed run is written later than the first
        self.delay = timedelta(0)

    def stamp(self, step: int) -> str:
        moment = START + self.delay + timedelta(seconds=step * SECONDS_PER_STEP)
        return moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}"

    def message(self, step: int, text: str) -> None:
        self.lines.append(f"{self.stamp(step)} {text}")

    def config(self, config: dict = CONFIG, step: int = 0) -> None:
        self.message(step, json.dumps(config))

    def step_line(self, step: int, total: int, values: dict[str, float], lr: float) -> None:
        body = "".join(f"train/{key}: {value:.6g}, " for key, value in values.items())
        self.message(step, f"[Train Step] {step}/{total}: {body}lr: {self.lr_format.format(lr)}, ")

    def run(self, rows: list[dict], total: int = CONFIG["train"]["max_steps"], kl_weight: float = 1e-6) -> None:
        """Generator lines, and a discriminator line where the row has ``disc_loss``."""
        for row in rows:
            row = with_total(row, kl_weight) if "total_loss" not in row else row
            self.step_line(row["step"], total, {key: row[key] for key in GENERATOR_KEYS if key in row}, row["lr"])
            if row.get("disc_loss") is not None:
                self.step_line(row["step"], total, {key: row[key] for key in
                                                    ("disc_loss", "logits_real", "logits_fake")}, row["lr"])

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines) + "\n")
        return self.path


def write_run(path: Path, rows: list[dict] | None = None, config: dict = CONFIG, lr_format: str = "{:.3e}") -> Path:
    """A one-run log: the config line, then ``rows`` (healthy ones by default)."""
    writer = LogWriter(path, lr_format)
    writer.config(config)
    writer.run(healthy_steps(config) if rows is None else rows, config["train"]["max_steps"],
               config["loss"]["kl_weight"])
    return writer.write()
