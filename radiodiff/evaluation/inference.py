"""Loading a saved VAE and running a model over a dataset of gain maps: weights, devices, batches and inference
mode, shared by every pass."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch
from diffusers import AutoencoderKL
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ..file_names import CONFIG_FILE, EMA_VARIANT, EMA_WEIGHTS_FILE, weights_file


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_vae(model_dir: str | Path, variant: str | None = None) -> AutoencoderKL:
    """A saved VAE folder, read with plain ``AutoencoderKL`` so that any KL autoencoder can be evaluated.

    ``variant="ema"`` reads ``diffusion_pytorch_model.ema.safetensors``, the EMA weights the trainer saves.
    """
    expected = f"expected a saved VAE folder with {CONFIG_FILE} and {weights_file(variant)}"
    return load_saved_folder(AutoencoderKL, model_dir, variant, CONFIG_FILE, expected)


def load_saved_folder(loader: Any, folder: str | Path, variant: str | None, marker: str, expected: str) -> Any:
    """``loader.from_pretrained(folder)`` of a saved model or pipeline folder, whose ``marker`` file must exist.

    Local folders and safetensors only: a missing path must not turn into a Hub download, nor a missing
    safetensors file into unpickling a ``.bin``. Either ends as ``FileNotFoundError`` saying what was ``expected``.
    """
    if not (Path(folder) / marker).is_file():
        raise FileNotFoundError(f"{folder}: no {marker}; {expected}")
    try:
        return loader.from_pretrained(folder, variant=variant, use_safetensors=True)
    except OSError as error:
        raise FileNotFoundError(f"{folder}: {expected} ({str(error).splitlines()[0]})") from error


def default_variant(model_dir: str | Path) -> str | None:
    """The weights a run's users load by default, as the trainer evaluates them: ``"ema"`` when the folder has
    EMA weights, else the plain ones (``None``)."""
    return EMA_VARIANT if (Path(model_dir) / EMA_WEIGHTS_FILE).is_file() else None


def spread_subset(dataset: Dataset, count: int) -> Dataset:
    """Up to ``count`` items spread evenly over ``dataset``: many cities rather than one city's transmitters."""
    count = min(count, len(dataset))
    return Subset(dataset, [i * len(dataset) // count for i in range(count)])


@contextlib.contextmanager
def inference(vae: torch.nn.Module, device: torch.device | str) -> Iterator[torch.nn.Module]:
    """``vae`` on ``device`` in eval mode without gradients; its training mode is restored afterwards."""
    was_training = vae.training
    vae.to(device).eval()
    try:
        with torch.inference_mode():
            yield vae
    finally:
        vae.train(was_training)


def batches(
    dataset: Dataset, *, batch_size: int, num_workers: int = 0, description: str = ""
) -> Iterator[dict[str, Any]]:
    """Collated batches of ``dataset`` items in dataset order, under a progress bar."""
    if len(dataset) == 0:
        raise ValueError(f"{description or 'dataset'}: the dataset is empty; there is nothing to evaluate")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    with tqdm(total=len(dataset), desc=description, unit="map") as progress:
        for batch in loader:
            yield batch
            progress.update(len(batch["name"]))


def model_input(batch: dict[str, Any], vae: torch.nn.Module, device: torch.device | str) -> torch.Tensor:
    """The batch's gain maps on ``device`` in the VAE's dtype."""
    return batch["gain_map"].to(device=device, dtype=vae.dtype)


def posterior_latent(posterior, sample_posterior: bool, generator: torch.Generator | None) -> torch.Tensor:
    """A posterior sample (reproducible through ``generator``) or the deterministic posterior mode."""
    return posterior.sample(generator=generator) if sample_posterior else posterior.mode()


def seeded_generator(device: torch.device | str, seed: int) -> torch.Generator:
    return torch.Generator(device=torch.device(device)).manual_seed(seed)
