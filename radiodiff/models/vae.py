"""The RadioDiff first-stage VAE: a diffusers ``AutoencoderKL`` for single-channel radio maps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from diffusers import AutoencoderKL
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution

# diffusers' pipeline loader finds a custom component's load method by looking its base classes up in the
# component's own module (pipeline_loading_utils.get_class_obj_and_candidates): a saved pipeline holding a
# RadioDiffVAE loads only if ModelMixin is a name here
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401

# The keys of the original RadioDiff / latent-diffusion ``ddconfig`` that we can express.
COMPVIS_DDCONFIG_KEYS = (
    "double_z",
    "z_channels",
    "resolution",
    "in_channels",
    "out_ch",
    "ch",
    "ch_mult",
    "num_res_blocks",
    "attn_resolutions",
    "dropout",
)


def check_compvis_ddconfig(ddconfig: Mapping[str, Any], embed_dim: Any, where: str = "ddconfig") -> None:
    """Refuse, with ``ValueError``, the settings of an original (CompVis latent-diffusion) ``ddconfig`` that
    ``AutoencoderKL`` cannot express: attention inside the blocks, dropout, ``double_z: false``,
    ``z_channels != embed_dim``."""
    attn_resolutions, dropout = ddconfig.get("attn_resolutions") or [], ddconfig.get("dropout") or 0.0
    if not isinstance(attn_resolutions, (list, tuple)):
        raise ValueError(f"{where}.attn_resolutions: expected a list, got {attn_resolutions!r}")
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool):
        raise ValueError(f"{where}.dropout: expected a number, got {dropout!r}")
    if attn_resolutions:
        raise ValueError(
            f"{where}.attn_resolutions: {list(attn_resolutions)} asks for attention inside the down/up blocks, "
            "which AutoencoderKL cannot express; expected []"
        )
    if dropout != 0.0:
        raise ValueError(f"{where}.dropout: {dropout}; AutoencoderKL has no dropout, expected 0.0")
    if ddconfig.get("double_z", True) is not True:
        raise ValueError(f"{where}.double_z: AutoencoderKL always predicts mean and log-variance; expected true")
    z_channels = ddconfig.get("z_channels")
    if z_channels is not None and embed_dim is not None and z_channels != embed_dim:
        raise ValueError(
            f"{where}.z_channels ({z_channels}) != embed_dim ({embed_dim}); AutoencoderKL uses one latent width for both"
        )


def downsampling_factor(block_out_channels: Sequence[int]) -> int:
    """How much smaller the latent is than the map, per side: each encoder level after the first halves it."""
    return 2 ** (len(block_out_channels) - 1)


@dataclass
class RadioDiffVAEOutput(DecoderOutput):
    """What one training forward pass returns.

    Args:
        sample (`torch.Tensor`): the reconstruction, shaped like the input.
        posterior (`DiagonalGaussianDistribution`): the encoder's posterior over latents.
        latent (`torch.Tensor`): the latent the reconstruction was decoded from (a sample or the mode).
    """

    posterior: DiagonalGaussianDistribution | None = None
    latent: torch.Tensor | None = None


class RadioDiffVAE(AutoencoderKL):
    r"""The KL autoencoder of RadioDiff's first stage, for 1-channel path-gain maps.

    A plain subclass of [`~diffusers.AutoencoderKL`]: what ``save_pretrained`` writes loads with
    ``AutoencoderKL.from_pretrained`` and gives the same outputs. The defaults are the paper's model
    (55,307,453 parameters, 4x downsampling, a 3x64x64 latent for a 256x256 map).

    Args:
        in_channels (`int`, defaults to 1): channels of the input map.
        out_channels (`int`, defaults to 1): channels of the reconstruction.
        down_block_types (`tuple[str]`): encoder block types, one per resolution level.
        up_block_types (`tuple[str]`): decoder block types, one per resolution level.
        block_out_channels (`tuple[int]`, defaults to `(128, 256, 512)`): channels per level; each level
            after the first halves the resolution.
        layers_per_block (`int`, defaults to 2): residual blocks per level (the original ``num_res_blocks``).
        act_fn (`str`, defaults to `"silu"`): activation function.
        latent_channels (`int`, defaults to 3): channels of the latent (the original ``embed_dim``).
        norm_num_groups (`int`, defaults to 32): groups of the GroupNorm layers.
        sample_size (`int`, defaults to 256): the map size the model is meant for (used by tiling only).
        scaling_factor (`float`, defaults to 0.3): multiplies latents before the diffusion stage; 0.3 is
            RadioDiff's value, and training measures and stores one for the trained model.
        shift_factor (`float`, *optional*): subtracted from latents before scaling.
        latents_mean (`tuple[float]`, *optional*): per-channel latent mean, for downstream stages.
        latents_std (`tuple[float]`, *optional*): per-channel latent std, for downstream stages.
        force_upcast (`bool`, defaults to `True`): run in float32 inside half-precision pipelines.
        use_quant_conv (`bool`, defaults to `True`): 1x1 convolution after the encoder.
        use_post_quant_conv (`bool`, defaults to `True`): 1x1 convolution before the decoder.
        mid_block_add_attention (`bool`, defaults to `True`): self-attention in the mid blocks, as the
            original model has.
    """

    # what `compile_repeated_blocks` compiles: every level's blocks, leaving the decoder's output layers eager
    _repeated_blocks = (
        "DownEncoderBlock2D", "AttnDownEncoderBlock2D", "UpDecoderBlock2D", "AttnUpDecoderBlock2D", "UNetMidBlock2D"
    )

    # the layers that read the map or the latent and write the latent or the map (for optimizers such as Muon)
    edge_layers = (
        "encoder.conv_in", "encoder.conv_out", "quant_conv", "post_quant_conv", "decoder.conv_in", "decoder.conv_out"
    )

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",) * 3,
        up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",) * 3,
        block_out_channels: tuple[int, ...] = (128, 256, 512),
        layers_per_block: int = 2,
        act_fn: str = "silu",
        latent_channels: int = 3,
        norm_num_groups: int = 32,
        sample_size: int = 256,
        scaling_factor: float = 0.3,
        shift_factor: float | None = None,
        latents_mean: tuple[float, ...] | None = None,
        latents_std: tuple[float, ...] | None = None,
        force_upcast: bool = True,
        use_quant_conv: bool = True,
        use_post_quant_conv: bool = True,
        mid_block_add_attention: bool = True,
    ):
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            act_fn=act_fn,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            sample_size=sample_size,
            scaling_factor=scaling_factor,
            shift_factor=shift_factor,
            latents_mean=latents_mean,
            latents_std=latents_std,
            force_upcast=force_upcast,
            use_quant_conv=use_quant_conv,
            use_post_quant_conv=use_post_quant_conv,
            mid_block_add_attention=mid_block_add_attention,
        )

    @classmethod
    def from_block_channels(
        cls, block_out_channels: tuple[int, ...], attention_levels: Sequence[int] = (), **kwargs: Any
    ) -> "RadioDiffVAE":
        """A VAE with one encoder/decoder level per entry of ``block_out_channels``; the levels in
        ``attention_levels`` (0 = full resolution) add self-attention after each residual block, in the encoder
        and the decoder (diffusers' ``AttnDownEncoderBlock2D`` and ``AttnUpDecoderBlock2D``)."""
        levels = len(block_out_channels)
        attention = set(attention_levels)
        down = tuple("AttnDownEncoderBlock2D" if i in attention else "DownEncoderBlock2D" for i in range(levels))
        # the decoder runs its levels from the lowest resolution up
        up = tuple("AttnUpDecoderBlock2D" if i in attention else "UpDecoderBlock2D" for i in reversed(range(levels)))
        return cls(block_out_channels=tuple(block_out_channels), down_block_types=down, up_block_types=up, **kwargs)

    @classmethod
    def from_compvis_config(cls, ddconfig: Mapping[str, Any], embed_dim: int, **kwargs: Any) -> "RadioDiffVAE":
        """Build the VAE from the original RadioDiff (latent-diffusion) ``ddconfig`` and ``embed_dim``.

        Raises ``ValueError`` for settings that diffusers' ``AutoencoderKL`` cannot express.
        """
        unknown = sorted(set(ddconfig) - set(COMPVIS_DDCONFIG_KEYS))
        if unknown:
            raise ValueError(f"ddconfig: unknown keys {unknown}; expected a subset of {list(COMPVIS_DDCONFIG_KEYS)}")
        missing = sorted({"ch", "ch_mult", "num_res_blocks", "z_channels"} - set(ddconfig))
        if missing:
            raise ValueError(f"ddconfig: missing required keys {missing}")
        check_compvis_ddconfig(ddconfig, int(embed_dim))
        block_out_channels = tuple(int(ddconfig["ch"]) * int(m) for m in ddconfig["ch_mult"])
        return cls.from_block_channels(
            block_out_channels,
            in_channels=int(ddconfig.get("in_channels", 1)),
            out_channels=int(ddconfig.get("out_ch", 1)),
            layers_per_block=int(ddconfig["num_res_blocks"]),
            latent_channels=int(embed_dim),
            sample_size=int(ddconfig.get("resolution", 256)),
            **kwargs,
        )

    @property
    def downsampling_factor(self) -> int:
        return downsampling_factor(self.config.block_out_channels)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """The shape (C, H, W) of the latent of a ``height`` x ``width`` map."""
        factor = self.downsampling_factor
        return (self.config.latent_channels, height // factor, width // factor)

    @property
    def last_layer_weight(self) -> torch.nn.Parameter:
        """The decoder's output convolution, where the adaptive GAN weight is measured."""
        return self.decoder.conv_out.weight

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
        return_posterior: bool = False,
    ) -> RadioDiffVAEOutput | DecoderOutput | tuple[torch.Tensor]:
        r"""Encode and decode ``sample`` in one pass.

        Args:
            sample (`torch.Tensor`): maps in [-1, 1], shaped (B, C, H, W).
            sample_posterior (`bool`, defaults to `False`): decode a posterior sample (as training does)
                instead of the posterior mode (deterministic, for evaluation).
            return_dict (`bool`, defaults to `True`): return an output dataclass rather than a tuple.
            generator (`torch.Generator`, *optional*): makes posterior sampling reproducible.
            return_posterior (`bool`, defaults to `False`): also return the posterior and the latent, as
                the VAE-GAN loss needs; the default keeps ``AutoencoderKL``'s behaviour.
        """
        posterior = self.encode(sample).latent_dist
        latent = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        reconstruction = self.decode(latent).sample
        if return_posterior:
            output = RadioDiffVAEOutput(sample=reconstruction, posterior=posterior, latent=latent)
            return output if return_dict else (reconstruction, posterior, latent)
        return DecoderOutput(sample=reconstruction) if return_dict else (reconstruction,)


# ---- the latent normalisation (one convention, read from the VAE's config) -----------------------------------
#
# diffusers' SD3/Flux convention: the diffusion stage works on ``(z - shift_factor) * scaling_factor``, with
# ``shift_factor`` the mean and ``scaling_factor`` 1/std of the training latents (one scalar each; a missing
# ``shift_factor`` means 0). ``latents_mean``/``latents_std`` stay unset: pipelines that read them would apply a
# second, per-channel normalisation on top. Works on any ``AutoencoderKL`` config, not only ours.


def normalize_latents(latent: torch.Tensor, vae_config: Any) -> torch.Tensor:
    """VAE latents ``z`` -> what the diffusion stage sees: ``(z - shift_factor) * scaling_factor`` (the pipeline
    undoes it before ``vae.decode``, as diffusers' pipelines do)."""
    shift = getattr(vae_config, "shift_factor", None) or 0.0
    return (latent - shift) * vae_config.scaling_factor
