"""The text training log, in the original RadioDiff format with a readable learning rate.

``logs/<YYYY-mm-dd-HH-MM>_.log``: the resolved config as one JSON line, then every ``log_every`` steps

    2026-11-24 07:12:03,123 [Train Step] 200/2000: train/total_loss: 0.123456, ..., lr: 5.000e-06, 

for the generator and, once the discriminator trains, a second line for the same step with
``train/disc_loss, train/logits_real, train/logits_fake``. ``radiodiff report`` reads it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

LOG_FORMAT = "%(asctime)-15s %(message)s"


def format_step_line(step: int, total_steps: int, scalars: Mapping[str, float], lr: float) -> str:
    fields = "".join(f"train/{key}: {value:.6g}, " for key, value in scalars.items())
    return f"[Train Step] {step}/{total_steps}: {fields}lr: {lr:.3e}, "


class RunLog:
    """Writes the text log on the main process; a no-op elsewhere."""

    def __init__(self, log_dir: str | Path, config: Mapping[str, Any], enabled: bool = True):
        self.path: Path | None = None
        self._logger = logging.getLogger(f"radiodiff.train.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        if not enabled:
            self._logger.disabled = True
            return
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.path = log_dir / f"{time.strftime('%Y-%m-%d-%H-%M')}_.log"
        handler = logging.FileHandler(self.path)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        self._logger.addHandler(handler)
        self._logger.info(json.dumps(config))

    def step(self, step: int, total_steps: int, scalars: Mapping[str, float], lr: float) -> None:
        self._logger.info(format_step_line(step, total_steps, scalars, lr))

    def note(self, message: str) -> None:
        self._logger.info(message)

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
