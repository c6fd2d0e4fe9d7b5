"""Convert a checkpoint of the original RadioDiff code (``model-N.pt``) into diffusers folders.

The original first stage is latent-diffusion's ``AutoencoderKL``: its state dict holds the VAE
(``encoder.*``, ``decoder.*``, ``quant_conv.*``, ``post_quant_conv.*``) and the loss module beside it
(``loss.discriminator.*``, ``loss.logvar``, ``loss.perceptual_loss.*``). The trainer saves
``{"model": state_dict, "ema": EMA(model).state_dict(), "opt_ae": ..., "step": ...}``, where the EMA keeps
the averaged copy under ``ema_model.*`` and the trained one under ``online_model.*``.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

from .config import read_yaml
from .models import PatchGANDiscriminator, RadioDiffVAE

VAE_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
DISCRIMINATOR_PREFIX = "loss.discriminator."
LOGVAR_KEY = "loss.logvar"
EMA_PREFIX = "ema_model."
# the first bytes of what ``torch.save`` writes: a zip archive (torch >= 1.6) or a bare pickle
TORCH_FILE_SIGNATURES = (b"PK\x03\x04", b"\x80")


class ConversionError(ValueError):
    """A file that is not an original RadioDiff checkpoint, or weights that do not fit the model."""


@dataclass
class ConversionReport:
    """What ``convert_checkpoint`` wrote and which keys it could not place."""

    vae_dir: Path
    discriminator_dir: Path | None
    weights: str
    ema_variant_written: bool
    step: int | None
    vae_config: dict[str, Any]
    unused_keys: list[str] = field(default_factory=list)
    discriminator_missing_keys: list[str] = field(default_factory=list)
    logvar: float | None = None

    def summary(self) -> str:
        lines = [
            f"vae ({self.weights} weights) -> {self.vae_dir}"
            + (" (+ the EMA as variant 'ema')" if self.ema_variant_written else ""),
            "  block_out_channels={block_out_channels}, layers_per_block={layers_per_block}, "
            "latent_channels={latent_channels}".format(**self.vae_config),
        ]
        if self.discriminator_dir is not None:
            lines.append(f"discriminator -> {self.discriminator_dir}")
        else:
            lines.append("discriminator: none in the checkpoint (no loss.discriminator.* keys)")
        if self.step is not None:
            lines.append(f"checkpoint step: {self.step}")
        if self.logvar is not None:
            lines.append(f"loss.logvar = {self.logvar:.6g} (kept out of the models; set loss.logvar_init to reuse it)")
        if self.discriminator_missing_keys:
            lines.append(
                f"discriminator keys missing from the checkpoint ({len(self.discriminator_missing_keys)}), left "
                f"at their initial values: {_abbreviate(self.discriminator_missing_keys)}"
            )
        if self.unused_keys:
            lines.append(f"unused keys ({len(self.unused_keys)}): {_abbreviate(self.unused_keys)}")
        else:
            lines.append("unused keys: none")
        return "\n".join(lines)


def _abbreviate(keys: list[str], shown: int = 8) -> str:
    # prefixes first: a checkpoint's LPIPS weights are a hundred keys that say one thing
    groups: dict[str, int] = {}
    for key in keys:
        prefix = ".".join(key.split(".")[:2])
        groups[prefix] = groups.get(prefix, 0) + 1
    parts = [f"{prefix}.* ({count})" if count > 1 else prefix for prefix, count in groups.items()]
    return ", ".join(parts[:shown]) + (f", ... ({len(parts) - shown} more)" if len(parts) > shown else "")


def load_original_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read ``path`` with ``weights_only=True`` and check that it has the original trainer's layout."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head.startswith(TORCH_FILE_SIGNATURES):
        raise ConversionError(f"{path}: not a PyTorch checkpoint (neither a torch zip archive nor a pickle)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise ConversionError(
                f"{path}: the file needs arbitrary code to unpickle (it stores Python objects, not just tensors "
                "and plain containers), so it is refused; an original RadioDiff model-N.pt loads without it"
            ) from None
        raise ConversionError(f"{path}: not a readable PyTorch checkpoint ({error})") from None
    except (RuntimeError, EOFError) as error:
        raise ConversionError(f"{path}: not a readable PyTorch checkpoint ({error})") from None
    if not isinstance(payload, dict):
        raise ConversionError(
            f"{path}: expected a dict with 'model' (an original RadioDiff model-N.pt), got {type(payload).__name__}"
        )
    if not isinstance(payload.get("model"), Mapping):
        raise ConversionError(
            f"{path}: expected a dict with a 'model' state dict (an original RadioDiff model-N.pt); "
            f"found keys {sorted(map(str, payload))}"
        )
    return payload


def compvis_model_config(path: str | Path) -> tuple[dict[str, Any], int]:
    """``(ddconfig, embed_dim)`` from an original YAML.

    Accepts latent-diffusion's ``model.params.{ddconfig,embed_dim}`` and the flat ``model.{ddconfig,embed_dim}``
    of RadioDiff's ``first_radio.yaml``.
    """
    model = read_yaml(path).get("model")
    if not isinstance(model, Mapping):
        raise ConversionError(f"{path}: expected a 'model' section")
    params = model.get("params", model)
    if not isinstance(params.get("ddconfig"), Mapping) or "embed_dim" not in params:
        raise ConversionError(f"{path}: expected model.ddconfig and model.embed_dim (or under model.params)")
    ddconfig = dict(params["ddconfig"])
    # first_radio.yaml gives the resolution as [H, W]; AutoencoderKL keeps one sample size
    if isinstance(ddconfig.get("resolution"), (list, tuple)):
        ddconfig["resolution"] = max(ddconfig["resolution"])
    return ddconfig, int(params["embed_dim"])


def infer_compvis_model_config(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], int]:
    """``(ddconfig, embed_dim)`` read off the weight shapes of an original VAE state dict."""
    try:
        ch = state["encoder.conv_in.weight"].shape[0]
        in_channels = state["encoder.conv_in.weight"].shape[1]
        out_ch = state["decoder.conv_out.weight"].shape[0]
        embed_dim = state["quant_conv.weight"].shape[0] // 2
        z_channels = state["encoder.conv_out.weight"].shape[0] // 2
    except KeyError as error:
        raise ConversionError(f"the checkpoint's model has no {error.args[0]}: not a latent-diffusion VAE") from None
    levels = sorted({int(m[1]) for key in state if (m := re.match(r"encoder\.down\.(\d+)\.", key))})
    attention = sorted(key for key in state if re.match(r"encoder\.down\.\d+\.attn\.", key))
    if attention:
        raise ConversionError(
            f"the checkpoint has attention inside the down blocks ({attention[0]}, ...), which AutoencoderKL "
            "cannot express"
        )
    ch_mult = [state[f"encoder.down.{level}.block.0.conv1.weight"].shape[0] // ch for level in levels]
    num_res_blocks = len({m[1] for key in state if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", key))})
    ddconfig = dict(
        double_z=True,
        z_channels=z_channels,
        in_channels=in_channels,
        out_ch=out_ch,
        ch=ch,
        ch_mult=ch_mult,
        num_res_blocks=num_res_blocks,
        attn_resolutions=[],
        dropout=0.0,
    )
    return ddconfig, embed_dim


def infer_discriminator_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """PatchGAN settings read off the weights of taming's ``NLayerDiscriminator``.

    The weights say more than the original ``lossconfig`` can: its ``ndf`` is fixed at 64 in the code, and
    ``disc_in_channels``, ``disc_num_layers`` and ``use_actnorm`` all show in the shapes and key names.
    """
    first = state["main.0.weight"]
    convolutions = [key for key, value in state.items() if key.endswith(".weight") and value.ndim == 4]
    return dict(
        in_channels=first.shape[1],
        ndf=first.shape[0],
        # the first and the last convolution are not stride-2 layers
        n_layers=len(convolutions) - 2,
        norm="actnorm" if any(key.endswith(".loc") for key in state) else "batch",
    )


def _load_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], what: str) -> tuple[list, list]:
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:
        raise ConversionError(f"{what}: the weights do not fit the model built from the config: {error}") from None
    return list(result.missing_keys), list(result.unexpected_keys)


def _vae_with_weights(compvis_state: Mapping[str, torch.Tensor], vae: RadioDiffVAE) -> tuple[RadioDiffVAE, list[str]]:
    """``vae`` loaded from the CompVis keys of ``compvis_state``; returns the keys it could not place."""
    diffusers_state = convert_ldm_vae_checkpoint(dict(compvis_state), vae.config)
    missing, unexpected = _load_weights(vae, diffusers_state, "vae")
    if missing:
        raise ConversionError(
            f"vae: the checkpoint lacks {len(missing)} weights the model needs: {_abbreviate(sorted(missing))}"
        )
    return vae, sorted(unexpected)


def _split_state(model_state: Mapping[str, torch.Tensor]) -> tuple[dict, dict, list[str]]:
    vae_state = {k: v for k, v in model_state.items() if k.startswith(VAE_PREFIXES)}
    discriminator_state = {
        k[len(DISCRIMINATOR_PREFIX) :]: v for k, v in model_state.items() if k.startswith(DISCRIMINATOR_PREFIX)
    }
    other = sorted(k for k in model_state if not k.startswith(VAE_PREFIXES + (DISCRIMINATOR_PREFIX, LOGVAR_KEY)))
    return vae_state, discriminator_state, other


def _ema_state(payload: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    ema = payload.get("ema")
    if not isinstance(ema, Mapping):
        return None
    state = {k[len(EMA_PREFIX) :]: v for k, v in ema.items() if k.startswith(EMA_PREFIX)}
    return state or None


def _refuse_earlier_conversion(out_dir: Path) -> None:
    for folder in (out_dir / "vae", out_dir / "discriminator"):
        # weights left by an earlier conversion (an EMA variant, say) would pass for this checkpoint's
        if folder.exists() and any(folder.iterdir()):
            raise ConversionError(f"{folder}: already exists and is not empty; choose another --out or remove it")


def _write_discriminator(state: Mapping[str, torch.Tensor], folder: Path) -> tuple[list[str], list[str]]:
    """Save the discriminator of ``state`` (the online one: it was trained against the online generator, not
    the EMA) to ``folder``; returns its missing and unexpected keys."""
    discriminator = PatchGANDiscriminator(**infer_discriminator_config(state))
    missing, unexpected = _load_weights(discriminator, state, "discriminator")
    discriminator.save_pretrained(folder)
    return missing, unexpected


def convert_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    use_ema: bool = False,
    config: str | Path | None = None,
) -> ConversionReport:
    """Write ``out_dir/vae`` (and ``out_dir/discriminator``) from an original RadioDiff ``model-N.pt``.

    Args:
        checkpoint: the original trainer's checkpoint.
        out_dir: where the diffusers folders go.
        use_ema: make the EMA weights the default ones of ``vae/``; the EMA is written as the ``ema``
            variant whenever the checkpoint has one.
        config: the original YAML (``first_radio.yaml``) for the VAE; without it the VAE's architecture is read
            off the weights. The discriminator's always is.
    """
    payload = load_original_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    _refuse_earlier_conversion(out_dir)
    vae_state, discriminator_state, other_keys = _split_state(payload["model"])
    ema_vae_state = _ema_state(payload)
    if use_ema and ema_vae_state is None:
        raise ConversionError(f"{checkpoint}: --use-ema, but there is no 'ema' entry with ema_model.* weights")

    ddconfig, embed_dim = compvis_model_config(config) if config is not None else infer_compvis_model_config(vae_state)
    vae = RadioDiffVAE.from_compvis_config(ddconfig, embed_dim)

    online_vae, unused_vae_keys = _vae_with_weights(vae_state, vae)
    ema_vae = None
    if ema_vae_state is not None:
        ema_vae, _ = _vae_with_weights(
            {k: v for k, v in ema_vae_state.items() if k.startswith(VAE_PREFIXES)},
            RadioDiffVAE.from_config(online_vae.config),
        )
    default_vae = ema_vae if use_ema else online_vae
    default_vae.save_pretrained(out_dir / "vae")
    if ema_vae is not None:
        ema_vae.save_pretrained(out_dir / "vae", variant="ema")

    discriminator_dir, discriminator_missing = None, []
    if discriminator_state:
        discriminator_dir = out_dir / "discriminator"
        discriminator_missing, unexpected = _write_discriminator(discriminator_state, discriminator_dir)
        other_keys += [DISCRIMINATOR_PREFIX + key for key in unexpected]

    logvar = payload["model"].get(LOGVAR_KEY)
    step = payload.get("step")
    return ConversionReport(
        vae_dir=out_dir / "vae",
        discriminator_dir=discriminator_dir,
        weights="ema" if use_ema else "online",
        ema_variant_written=ema_vae is not None,
        step=int(step) if isinstance(step, (int, torch.Tensor)) else None,
        vae_config=dict(default_vae.config),
        unused_keys=sorted(other_keys + unused_vae_keys),
        discriminator_missing_keys=sorted(discriminator_missing),
        logvar=float(logvar) if isinstance(logvar, torch.Tensor) else None,
    )
