"""Writing a command's output files safely: small files written whole (a reader, or a crash midway, sees the old
file or the new one, never half of one), and no existing output replaced unless the user asked."""

from __future__ import annotations

import os
from pathlib import Path


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


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Raise ``FileExistsError`` naming the first of ``paths`` that exists, unless ``overwrite``."""
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]} exists{more}; give --overwrite to replace it, or another --out")
