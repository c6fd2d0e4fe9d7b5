"""The stages' configs as dataclasses: every key, its type, its default and, beside it, its range.

A model's own arguments (the ``model:``, ``discriminator:`` and ``loss:`` sections) take their defaults from the
model's ``__init__``, as diffusers' models keep theirs; they are read when a config is first built, since the
models import torch. Each stage's ``train:`` section has the keys that stage reads: :class:`TrainConfig` those of
the shared loop, :class:`VAETrainConfig`, :class:`LDMTrainConfig` and :class:`RadioUNetTrainConfig` the rest.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .checks import COUNT, DECAY, FRACTION, LEARNING_RATE, POSITIVE, POSITIVE_OR_NULL, WEIGHT, Range, checked
from .errors import ConfigError


@functools.cache
def _defaults_of(target: str) -> dict[str, Any]:
    """The parameter defaults of ``"module:Class.method"``."""
    module, _, qualified_name = target.partition(":")
    callable_ = importlib.import_module(module)
    for name in qualified_name.split("."):
        callable_ = getattr(callable_, name)
    parameters = inspect.signature(callable_).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def model_default(target: str, argument: str, check: Range | None = None) -> Any:
    """A field whose default is that of ``argument`` of ``target`` (``"module:Class.method"``), a tuple as a list."""

    def default() -> Any:
        value = _defaults_of(target)[argument]
        return list(value) if isinstance(value, tuple) else value

    return field(default_factory=default, metadata={"check": check} if check else {})


_VAE = "radiodiff.models.vae:RadioDiffVAE.__init__"
_VAE_LEVELS = "radiodiff.models.vae:RadioDiffVAE.from_block_channels"
_DISCRIMINATOR = "radiodiff.models.discriminator:PatchGANDiscriminator.__init__"
_LOSS = "radiodiff.losses.vae_gan:VAEGANLoss.__init__"


@dataclass
class VAEModelConfig:
    """The RadioDiff VAE (see :class:`radiodiff.RadioDiffVAE`); defaults are its own, the paper's 55.3M model."""

    in_channels: int = model_default(_VAE, "in_channels", POSITIVE)
    out_channels: int = model_default(_VAE, "out_channels", POSITIVE)
    latent_channels: int = model_default(_VAE, "latent_channels", POSITIVE)
    block_out_channels: list[int] = model_default(_VAE, "block_out_channels")
    layers_per_block: int = model_default(_VAE, "layers_per_block", POSITIVE)
    norm_num_groups: int = model_default(_VAE, "norm_num_groups", POSITIVE)
    mid_block_add_attention: bool = model_default(_VAE, "mid_block_add_attention")
    # levels (0 = full resolution) whose encoder and decoder blocks add self-attention after each residual block,
    # as the original ddconfig's attn_resolutions does; [] is the paper's model (attention in the mid block only)
    attention_levels: list[int] = model_default(_VAE_LEVELS, "attention_levels")
    scaling_factor: float = model_default(_VAE, "scaling_factor")
    # a saved ``vae/`` folder to start from instead of random weights
    pretrained: str | None = None

    def architecture(self) -> dict[str, Any]:
        """The arguments of ``RadioDiffVAE.from_block_channels``: every key but ``pretrained``."""
        arguments = dataclasses.asdict(self)
        del arguments["pretrained"]  # where to load from, not a model argument
        return arguments

    def check_together(self, prefix: str) -> None:
        channels, groups = self.block_out_channels, self.norm_num_groups
        if not channels or any(c < 1 or c % groups for c in channels):
            raise ConfigError(
                f"{prefix}block_out_channels: {channels} must be non-empty multiples of {prefix}norm_num_groups "
                f"({groups})",
                key=f"{prefix}block_out_channels",
            )
        levels = self.attention_levels
        if any(not 0 <= level < len(channels) for level in levels) or len(set(levels)) != len(levels):
            raise ConfigError(
                f"{prefix}attention_levels: {levels}: expected distinct levels from 0 to {len(channels) - 1} "
                f"(one per entry of {prefix}block_out_channels)",
                key=f"{prefix}attention_levels",
            )


@dataclass
class DiscriminatorConfig:
    """The PatchGAN discriminator (see :class:`radiodiff.PatchGANDiscriminator`); defaults are its own."""

    in_channels: int = model_default(_DISCRIMINATOR, "in_channels", POSITIVE)
    ndf: int = model_default(_DISCRIMINATOR, "ndf", POSITIVE)
    n_layers: int = model_default(_DISCRIMINATOR, "n_layers", POSITIVE)
    norm: Literal["batch", "actnorm"] = model_default(_DISCRIMINATOR, "norm")


@dataclass
class VAEGANLossConfig:
    """The VAE-GAN objective (see :class:`radiodiff.VAEGANLoss`); defaults are its own."""

    kl_weight: float = model_default(_LOSS, "kl_weight", WEIGHT)
    disc_weight: float = model_default(_LOSS, "disc_weight", WEIGHT)
    disc_start: int = model_default(_LOSS, "disc_start")
    disc_factor: float = model_default(_LOSS, "disc_factor")
    disc_loss: Literal["hinge", "vanilla"] = model_default(_LOSS, "disc_loss")
    perceptual_weight: float = model_default(_LOSS, "perceptual_weight", WEIGHT)
    # weight of |x - x̂| beside (x - x̂)^2 in the reconstruction loss: 1 is the original's sum, 0 a plain squared error
    l1_weight: float = model_default(_LOSS, "l1_weight", WEIGHT)
    # the error of the reconstruction clamped to [-1, 1], as it is evaluated: overshooting a target at -1 (a
    # building) or 1 costs nothing; false is the original's loss on the raw output
    clamp_reconstruction: bool = model_default(_LOSS, "clamp_reconstruction")
    logvar_init: float = model_default(_LOSS, "logvar_init")
    learn_logvar: bool = model_default(_LOSS, "learn_logvar")


@dataclass
class SyntheticConfig:
    """The built-in synthetic RadioMapSeer-like data, generated into ``cache_dir`` on first use.

    The cache folder is named by every field below and the generator's version, so a change makes a new set.
    """

    maps: int = checked(64, POSITIVE)
    tx_per_map: int = checked(8, POSITIVE)
    # pixels per side; the city is 256 m across whatever the size
    size: int = checked(256, POSITIVE)
    seed: int = 0
    cache_dir: str = "~/.cache/radiodiff/synthetic"


@dataclass
class DataConfig:
    """Where the gain maps come from and how they are split and shaped (see ``radiodiff.data``)."""

    source: Literal["synthetic", "radiomapseer", "datasets"] = "synthetic"
    # RadioMapSeer root folder, or for ``datasets``: a saved dataset, an image folder or a Hub id
    root: str | None = None
    # RadioMapSeer's gain/<simulation>/ folder (the synthetic source is DPM-like and ignores it); SionnaRT: the maps of
    # `radiodiff synth --engine sionna`
    simulation: Literal["DPM", "IRT2", "IRT4", "carsDPM", "carsIRT2", "SionnaRT"] = "DPM"
    # RadioMapSeer map split (radiodiff.data.splits); the synthetic source is always split leak-free
    protocol: Literal["leakfree", "radiodiff", "radiounet"] = "leakfree"
    # maps are returned at this size; None keeps their own size (RadioMapSeer's 256, the synthetic ``size``)
    resolution: int | None = None
    # maps whose size differs from ``resolution`` are resized if true, an error naming the file if false
    allow_resize: bool = False
    image_column: str = "image"
    # an unreadable image: "fail" when it is read, or "skip" (every image is read once up front, then counted)
    on_corrupt: Literal["fail", "skip"] = "fail"
    # DataLoader workers; also the processes that generate the synthetic set
    num_workers: int = checked(0, COUNT)
    # training split only: "dihedral" presents every map under the 8 flips and right-angle rotations of the square
    # (buildings and transmitter turned with it), so an epoch is 8 times longer; val and test are never augmented
    augment: Literal["none", "dihedral"] = "none"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class TrainConfig:
    """The loop both stages share: steps, batches, optimisation, precision, checkpoints, logging, evaluation."""

    max_steps: int = checked(150000, POSITIVE)
    batch_size: int = checked(2, POSITIVE)
    seed: int = 42
    gradient_accumulation_steps: int = checked(1, POSITIVE)
    lr: float = checked(5e-6, LEARNING_RATE)
    min_lr: float = 5e-7
    lr_schedule: Literal["constant", "cosine", "poly"] = "poly"
    warmup_steps: int = checked(0, COUNT)
    # "muon": Muon for the hidden layers' weight matrices and convolution kernels, AdamW (the betas below) for the
    # rest and for the discriminator, at the same learning rate and schedule
    optimizer: Literal["adamw", "muon"] = "adamw"
    # Muon's Newton-Schulz iterations per step: 5 is its authors' (and torch's); fewer cost less and orthogonalise less
    muon_ns_steps: int = checked(5, POSITIVE)
    # Muon's Nesterov momentum (its authors' and torch's 0.95)
    muon_momentum: float = checked(0.95, DECAY)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 1e-4
    max_grad_norm: float | None = None
    # "auto": bf16 autocast on a GPU that supports it and on a CPU with bf16 arithmetic (AVX512-BF16, AMX), fp32
    # elsewhere (master weights stay fp32 either way)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    gradient_checkpointing: bool = False
    allow_tf32: bool = True
    compile: bool = False
    # one fused AdamW kernel over all parameters instead of a loop over them (same update, less overhead)
    fused_optimizer: bool = True
    use_ema: bool = True
    ema_decay: float = checked(0.995, DECAY)
    ema_update_every: int = checked(10, POSITIVE)
    save_every: int = checked(5000, POSITIVE)
    checkpoints_total_limit: int | None = checked(3, POSITIVE_OR_NULL)
    sample_every: int = checked(5000, POSITIVE)
    num_sample_images: int = checked(4, COUNT)
    log_every: int = checked(100, POSITIVE)
    report_to: Literal["none", "tensorboard", "wandb", "trackio"] = "none"
    max_nonfinite_steps: int = checked(5, POSITIVE)
    # collectives that wait longer than this (a dead rank) stop the run instead of hanging
    collective_timeout_s: int = checked(600, POSITIVE)
    evaluate_at_end: bool = True
    push_to_hub: bool = False
    hub_repo_id: str | None = None

    def check_together(self, prefix: str) -> None:
        if self.push_to_hub and not self.hub_repo_id:
            raise ConfigError(
                f"{prefix}push_to_hub: true needs {prefix}hub_repo_id (USER/NAME)", key=f"{prefix}push_to_hub"
            )


@dataclass
class VAETrainConfig(TrainConfig):
    """The first stage's loop: the shared one, and what the discriminator and the exported VAE need."""

    # the discriminator's learning rate; null: train.lr
    disc_lr: float | None = None
    channels_last: bool = False
    # training maps whose latents set the exported scaling factor; 0 keeps model.scaling_factor
    latent_scale_maps: int = checked(1024, COUNT)


@dataclass
class VAEConfig:
    """A whole first-stage run."""

    output_dir: str = "outputs/radiodiff-vae"
    model: VAEModelConfig = field(default_factory=VAEModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: VAEGANLossConfig = field(default_factory=VAEGANLossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: VAETrainConfig = field(default_factory=VAETrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FrozenVAEConfig:
    """The first stage the diffusion stage works in, frozen: a ``vae/`` folder or a Hub id."""

    path: str | None = None
    # "auto": the EMA weights when the folder has them, else the plain ones
    variant: Literal["auto", "ema"] | None = "auto"


@dataclass
class DenoiserConfig:
    """The UNet and the condition encoder (``radiodiff.models.PRESETS``), what the UNet predicts, and where."""

    # "tiny" and "paper": diffusers UNets; "radiounet": RadioUNet's U-Net as a denoiser (for pixel space)
    preset: Literal["tiny", "paper", "radiounet"] = "paper"
    # "latent": in the frozen first stage's latent space (RadioDiff); "pixel": on the maps themselves, no VAE
    # (as RadioDiff's successors RadioFlow and RMDM): the VAE's reconstruction no longer bounds the maps
    space: Literal["latent", "pixel"] = "latent"
    # a name of radiodiff.schedulers.FORMULATIONS, where each formulation is defined
    formulation: str = "radiodiff"
    # the fraction of training samples whose condition features are zeroed (0 = never)
    condition_dropout: float = checked(0.0, FRACTION)

    def check_together(self, prefix: str) -> None:
        # imported here: the formulations import torch, the config does not
        from ..schedulers import formulation_class

        try:
            formulation_class(self.formulation)
        except ValueError as error:
            raise ConfigError(f"{prefix}{error}", key=f"{prefix}formulation") from None


@dataclass
class DiffusionConfig:
    """The objective and the sampler of the samples and the end-of-run evaluation."""

    # RadioDiff's per-sample weights w1 = 2 exp(1 - t), w2 = exp(sqrt(t)) (the original's weighting_loss)
    weighting_loss: bool = True
    # add the L1 terms to the MSE (the original's use_l1)
    use_l1: bool = True
    # RadioDiff's sampler splits its last step in two (the original's denoise=True)
    split_last_step: bool = True
    sampling_steps: int = checked(5, POSITIVE)
    # RadioDiff's sampler: the share of the posterior noise each step draws (1: the original's sampler, 0:
    # deterministic, as DDIM's eta); saved in the exported scheduler's config
    eta: float = checked(
        1.0, Range(lambda eta: 0.0 <= eta <= 1.0, "a value in [0, 1] (1: the original sampler, 0: deterministic)")
    )


@dataclass
class LatentsConfig:
    """Where the training latents come from: encoded each step by the frozen VAE, or `radiodiff encode-latents`."""

    source: Literal["on_the_fly", "encoded"] = "on_the_fly"
    # the `radiodiff encode-latents` folder of the training split (source: encoded)
    dir: str | None = None


@dataclass
class LDMTrainConfig(TrainConfig):
    """The loop, with the original second stage's settings as defaults (configs_old/BSDS_train_DPM.yaml)."""

    # first-stage keys that a second stage's config.yaml saved before the stages had their own keys holds with these
    # values (the second stage never read them): accepted with exactly these values and dropped, so old runs load
    saved_by_older_versions: ClassVar[dict[str, Any]] = {
        "disc_lr": None, "channels_last": False, "latent_scale_maps": 1024
    }

    max_steps: int = 50000
    batch_size: int = 32
    lr: float = 5e-5
    min_lr: float = 5e-6
    lr_schedule: Literal["constant", "cosine", "poly"] = "poly"
    max_grad_norm: float | None = 1.0
    ema_decay: float = 0.999
    ema_update_every: int = 1
    save_every: int = 5000
    sample_every: int = 5000


@dataclass
class LDMConfig:
    """A whole second-stage run: the frozen VAE, the denoiser, the objective, the data and the loop."""

    output_dir: str = "outputs/radiodiff-ldm"
    vae: FrozenVAEConfig = field(default_factory=FrozenVAEConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    latents: LatentsConfig = field(default_factory=LatentsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: LDMTrainConfig = field(default_factory=LDMTrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check_together(self, prefix: str) -> None:
        if self.denoiser.space == "latent" and not self.vae.path:
            raise ConfigError(
                "vae.path: required: the first stage's vae/ folder (or a Hub id), e.g. outputs/quickstart/vae "
                "(or denoiser.space: pixel, on the maps themselves without a VAE)",
                key="vae.path",
            )
        if self.denoiser.space == "pixel" and (self.vae.path or self.latents.source != "on_the_fly"):
            key = "vae.path" if self.vae.path else "latents.source"
            raise ConfigError(
                f"{key}: {self.vae.path if self.vae.path else self.latents.source!r}; a pixel-space denoiser "
                "(denoiser.space: pixel) trains on the maps themselves: expected no vae.path and latents.source: "
                "on_the_fly",
                key=key,
            )
        from ..schedulers import formulation_class

        formulation = formulation_class(self.denoiser.formulation)
        if self.diffusion.eta != 1.0 and not formulation.takes_eta:
            raise ConfigError(
                f"diffusion.eta: {self.diffusion.eta} applies to samplers that draw noise; the {formulation.name} "
                "formulation's draws none (leave it at 1.0)",
                key="diffusion.eta",
            )
        if self.latents.source == "encoded" and not self.latents.dir:
            raise ConfigError(
                "latents.dir: required with latents.source: encoded (a `radiodiff encode-latents` folder)",
                key="latents.dir",
            )
        if self.latents.source == "encoded" and self.data.augment != "none":
            raise ConfigError(
                f"data.augment: {self.data.augment!r}, but encoded latents are of the maps as they are; expected "
                "none with latents.source: encoded (or latents.source: on_the_fly to train on turned maps)",
                key="data.augment",
            )


# a model argument that replaces its preset's, or null for the preset's
PRESET_OR_POSITIVE = Range(lambda value: value is None or value >= 1, "a positive integer or null (the preset's)")


@dataclass
class RadioUNetModelConfig:
    """RadioUNet (see :class:`radiodiff.RadioUNetModel`): a preset, and any of the model's own arguments replacing the
    preset's (null: the preset's value)."""

    # "paper": the original RadioWNet cascade at 256x256; "quickstart": a small cascade at 64x64; "unet": one U-Net
    # at 64x64 (radiodiff.models.radiounet.PRESETS)
    preset: Literal["paper", "quickstart", "unet"] = "paper"
    # the side of the maps; must be the data's
    sample_size: int | None = checked(None, PRESET_OR_POSITIVE)
    first_down_channels: list[int] | None = None
    first_up_channels: list[int] | None = None
    first_head_channels: int | None = checked(None, PRESET_OR_POSITIVE)
    second_down_channels: list[int] | None = None
    second_up_channels: list[int] | None = None
    second_head_channels: int | None = checked(None, PRESET_OR_POSITIVE)
    down_kernel_sizes: list[int] | None = None
    down_pooling: list[bool] | None = None
    up_kernel_sizes: list[int] | None = None
    head_kernel_size: int | None = checked(None, PRESET_OR_POSITIVE)

    def overrides(self) -> dict[str, Any]:
        """The model arguments this section sets (those not null), for ``RadioUNetModel.from_preset``."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "preset" and value is not None}

    def architecture(self) -> dict[str, Any]:
        """Every argument of the model: the preset's, with this section's overrides."""
        from ..models.radiounet import PRESETS  # imported here: the models import torch, the config does not

        return {**PRESETS[self.preset], **self.overrides()}

    def is_cascade(self) -> bool:
        return self.architecture()["second_down_channels"] is not None

    def check_together(self, prefix: str) -> None:
        from ..models.radiounet import _check_widths

        try:
            _check_widths(self.architecture())
        except ValueError as error:
            # the section as the key: an override of any of its keys is named as where the error was set
            raise ConfigError(f"{prefix}{error} (preset {self.preset} with this section's keys)",
                              key=prefix.rstrip(".")) from None


@dataclass
class RadioUNetTrainConfig(TrainConfig):
    """RadioUNet's loop: the shared one, with the original's optimiser settings as defaults (Adam, lr 1e-4, batch 15,
    its notebook RadioWNet_c_DPM_Thr2.ipynb), and the cascade's two phases."""

    batch_size: int = 15
    lr: float = 1e-4
    lr_schedule: Literal["constant", "cosine", "poly"] = "constant"
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    ema_update_every: int = 1
    # a cascade: the steps that train the first U-Net (phase 1); the rest of max_steps train the second on the
    # first's frozen output (phase 2). null: half of max_steps. One U-Net has phase 1 only: leave it null
    first_unet_steps: int | None = checked(
        None, Range(lambda value: value is None or value >= 1, "a positive integer or null (half of train.max_steps)")
    )


@dataclass
class RadioUNetConfig:
    """A whole RadioUNet run: the supervised baseline on the same data and loop as the second stage."""

    output_dir: str = "outputs/radiounet"
    model: RadioUNetModelConfig = field(default_factory=RadioUNetModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: RadioUNetTrainConfig = field(default_factory=RadioUNetTrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def first_unet_steps(self) -> int:
        """The steps of phase 1: all of them for one U-Net, ``train.first_unet_steps`` (or half) for a cascade."""
        if not self.model.is_cascade():
            return self.train.max_steps
        return self.train.first_unet_steps or self.train.max_steps // 2

    def check_together(self, prefix: str) -> None:
        if self.train.gradient_checkpointing:
            raise ConfigError(
                "train.gradient_checkpointing: true; RadioUNet's U-Nets keep their activations (they are small and "
                "have no checkpointed blocks): leave it false",
                key="train.gradient_checkpointing",
            )
        steps, max_steps = self.train.first_unet_steps, self.train.max_steps
        if not self.model.is_cascade():
            if steps is not None:
                raise ConfigError(
                    f"train.first_unet_steps: {steps}, but model preset {self.model.preset} is one U-Net, trained in "
                    "one phase; leave it null (or choose a cascade: preset paper or quickstart)",
                    key="train.first_unet_steps",
                )
            return
        if steps is not None and steps >= max_steps:
            raise ConfigError(
                f"train.first_unet_steps: {steps}; expected fewer than train.max_steps ({max_steps}): the steps after "
                "it train the cascade's second U-Net, which the exported model's maps come from",
                key="train.first_unet_steps",
            )
        if steps is None and max_steps < 2:
            raise ConfigError(
                f"train.max_steps: {max_steps}; a cascade needs at least 2, one for each U-Net", key="train.max_steps"
            )
