"""Loading a saved pipeline folder in a process where diffusers is importable and radiodiff is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

LOAD_WITH_DIFFUSERS_ALONE = """
import sys

class NoRadiodiff:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "radiodiff":
            raise ImportError("radiodiff is blocked")

sys.meta_path.insert(0, NoRadiodiff())
try:
    import radiodiff
except ImportError:
    pass
else:
    raise SystemExit("radiodiff is importable")

import torch
from diffusers import DiffusionPipeline

folder, inputs_file, out = sys.argv[1:]
pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
buildings, transmitter = torch.load(inputs_file, weights_only=True)
maps = pipe(buildings, transmitter, generator=torch.Generator().manual_seed(0), output_type="pt").images
assert not any(name.partition(".")[0] == "radiodiff" for name in sys.modules)
torch.save({"maps": maps, "class": type(pipe).__module__}, out)
"""


def run_with_diffusers_alone(folder: Path, buildings: torch.Tensor, transmitter, tmp_path: Path) -> dict:
    """``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` and one call on ``buildings`` and
    ``transmitter`` (maps or ``(x, y)`` pairs) with seed 0, ``output_type="pt"``, in a subprocess that cannot
    import radiodiff. Returns ``{"maps": ..., "class": the loaded pipeline's module}``."""
    torch.save((buildings, transmitter), tmp_path / "inputs.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [sys.executable, "-I", "-c", LOAD_WITH_DIFFUSERS_ALONE, str(folder), str(tmp_path / "inputs.pt"),
         str(tmp_path / "maps.pt")],
        cwd=tmp_path, env=env, check=True, timeout=300,
    )
    return torch.load(tmp_path / "maps.pt", weights_only=True)
