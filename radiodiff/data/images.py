"""Reading map images the same way for every source: 8-bit grayscale, checked size, tensors in [-1, 1] or [0, 1]."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..notices import RadioDiffWarning

# modes that hold one 8-bit value per pixel once converted to "L" without losing range
_CONVERTIBLE_MODES = ("RGB", "RGBA", "P", "LA", "1")

Sample = TypeVar("Sample")


class UnreadableImageError(ValueError):
    """An image file that is missing, truncated or not an image."""


def open_image(source: str | Path, data: bytes | None = None) -> Image.Image:
    """The decoded image at ``source`` (or in ``data``, named ``source`` in errors)."""
    try:
        image = Image.open(io.BytesIO(data) if data is not None else source)
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"{source}: unreadable image ({error})") from error
    return image


class GrayscaleReader:
    """Turns images into 8-bit grayscale arrays, warning once per dataset about colour images it converts."""

    def __init__(self) -> None:
        self._warned_about_colour = False

    def __call__(self, image: Image.Image, source: str | Path) -> np.ndarray:
        if image.mode == "L":
            return np.asarray(image)
        if image.mode not in _CONVERTIBLE_MODES:
            raise ValueError(f"{source}: expected an 8-bit grayscale image, got mode {image.mode}")
        if not self._warned_about_colour:
            warnings.warn(
                f"{source}: {image.mode} image converted to grayscale (luminance); "
                "further colour images of this dataset are converted without a warning",
                RadioDiffWarning,
                stacklevel=2,
            )
            self._warned_about_colour = True
        return np.asarray(image.convert("L"))


def unit_tensor(array: np.ndarray) -> torch.Tensor:
    """An 8-bit image as a float32 (1, H, W) tensor in [0, 1]."""
    return torch.from_numpy(array.astype(np.float32) / 255.0).unsqueeze(0)


def signed_tensor(array: np.ndarray) -> torch.Tensor:
    """An 8-bit gain map as a float32 (1, H, W) tensor in [-1, 1]: ``/255``, then the original loader's
    ``Normalize(mean=0.5, std=0.5)``. (In numpy: on small tensors torch's per-op overhead dominates.)"""
    return torch.from_numpy((array.astype(np.float32) / 255.0 - 0.5) / 0.5).unsqueeze(0)


def _needs_resize(array: np.ndarray, size: int, allow_resize: bool, source: str | Path) -> bool:
    """Whether ``array`` must be resized to ``size``; an error if it must and resizing is not allowed."""
    if array.shape == (size, size):
        return False
    if not allow_resize:
        raise ValueError(
            f"{source}: a {array.shape[0]}x{array.shape[1]} map, expected {size}x{size}; "
            "set data.allow_resize: true to resize maps to data.resolution"
        )
    return True


def _resize_smooth(image: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize (antialiased when shrinking) of a (1, H, W) image."""
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def _resize_point(unit: torch.Tensor, size: int) -> torch.Tensor:
    """A one-pixel raster (the transmitter) moved to the matching pixel of a ``size`` x ``size`` grid."""
    height, width = unit.shape[-2:]
    row, col = divmod(int(unit.flatten().argmax()), width)
    resized = torch.zeros(1, size, size)
    resized[0, min(size - 1, int((row + 0.5) * size / height)), min(size - 1, int((col + 0.5) * size / width))] = 1.0
    return resized


@dataclass(frozen=True)
class MapShaper:
    """Turns 8-bit arrays into the tensors a dataset item holds, at ``size`` x ``size``.

    An array of another size is resized if ``allow_resize``, else it is an error naming its source.
    """

    size: int
    allow_resize: bool

    def gain_map(self, array: np.ndarray, source: str | Path) -> torch.Tensor:
        """float32 (1, size, size) in [-1, 1]; bilinear resizing commutes with the affine normalisation."""
        signed = signed_tensor(array)
        if _needs_resize(array, self.size, self.allow_resize, source):
            return _resize_smooth(signed, self.size)
        return signed

    def buildings(self, array: np.ndarray, source: str | Path) -> torch.Tensor:
        """float32 (1, size, size), 1 = building; resized masks are thresholded back to {0, 1}."""
        unit = unit_tensor(array)
        if _needs_resize(array, self.size, self.allow_resize, source):
            return (_resize_smooth(unit, self.size) >= 0.5).float()
        return unit

    def transmitter(self, array: np.ndarray, source: str | Path) -> torch.Tensor:
        """float32 (1, size, size), 1 at the transmitter; resizing keeps it a single pixel."""
        unit = unit_tensor(array)
        return _resize_point(unit, self.size) if _needs_resize(array, self.size, self.allow_resize, source) else unit


def drop_unreadable(samples: Sequence[Sample], read: Callable[[Sample], object], what: str) -> list[Sample]:
    """The samples that ``read`` can load; one warning at the end counts and names the others."""
    kept, skipped = [], []
    for sample in samples:
        try:
            read(sample)
        except UnreadableImageError as error:
            skipped.append(str(error))
            continue
        kept.append(sample)
    if skipped:
        warnings.warn(
            f"{what}: skipped {len(skipped)} unreadable image(s); the first: {skipped[0]}",
            RadioDiffWarning,
            stacklevel=2,
        )
    return kept
