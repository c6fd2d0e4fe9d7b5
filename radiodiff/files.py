"""Files of a run's output folder that several parts of the package share: the sample sheets' names, and small
files written whole (a reader, or a crash midway, sees the old file or the new one, never half of one)."""

from __future__ import annotations

import os
import re
from pathlib import Path

SAMPLE_NAME = re.compile(r"sample-(\d+)\.png")


def sample_file_name(milestone: int) -> str:
    """The name of the sample sheet of ``milestone`` (the trainer's ``samples/`` folder)."""
    return f"sample-{milestone}.png"


def find_samples(folders: list[Path]) -> list[tuple[int, Path]]:
    """``(milestone, path)`` of the ``sample-<milestone>.png`` files in ``folders``, in milestone order; a
    milestone found in several folders is taken from the first."""
    found: dict[int, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = SAMPLE_NAME.fullmatch(path.name)
            if match:
                found.setdefault(int(match.group(1)), path)
    return sorted(found.items())


def write_atomically(path: str | Path, content: str | bytes) -> Path:
    """Write ``content`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # beside the target, so that the rename stays on one file system; the pid keeps concurrent writers apart
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
