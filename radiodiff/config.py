"""Training configuration: YAML files and ``dotted.key=value`` overrides, validated once into dataclasses.

Every other module receives these typed objects and never digs through nested dicts.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from .files import write_atomically


class ConfigError(ValueError):
    """A configuration file, key or value that is not what the trainer expects.

    ``key`` is the dotted key at fault, when there is one, so that the message can say where it was set.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass
class VAEConfig:
    """The RadioDiff VAE (see :class:`radiodiff.RadioDiffVAE`); defaults are the paper's 55.3M model."""

    in_channels: int = 1
    out_channels: int = 1
    latent_channels: int = 3
    block_out_channels: list[int] = field(default_factory=lambda: [128, 256, 512])
    layers_per_block: int = 2
    norm_num_groups: int = 32
    mid_block_add_attention: bool = True
    # levels (0 = full resolution) whose encoder and decoder blocks add self-attention after each residual block,
    # as the original ddconfig's attn_resolutions does; [] is the paper's model (attention in the mid block only)
    attention_levels: list[int] = field(default_factory=list)
    scaling_factor: float = 0.3
    # a saved ``vae/`` folder to start from instead of random weights
    pretrained: str | None = None


@dataclass
class DiscriminatorConfig:
    """The PatchGAN discriminator (see :class:`radiodiff.PatchGANDiscriminator`)."""

    in_channels: int = 1
    ndf: int = 64
    n_layers: int = 3
    norm: Literal["batch", "actnorm"] = "batch"


@dataclass
class LossConfig:
    """The VAE-GAN objective (see :class:`radiodiff.VAEGANLoss`)."""

    kl_weight: float = 1e-6
    disc_weight: float = 0.5
    disc_start: int = 50001
    disc_factor: float = 1.0
    disc_loss: Literal["hinge", "vanilla"] = "hinge"
    perceptual_weight: float = 0.0
    # weight of |x - x̂| beside (x - x̂)^2 in the reconstruction loss: 1 is the original's sum, 0 a plain squared error
    l1_weight: float = 1.0
    # the error of the reconstruction clamped to [-1, 1], as it is evaluated: overshooting a target at -1 (a
    # building) or 1 costs nothing; false is the original's loss on the raw output
    clamp_reconstruction: bool = False
    logvar_init: float = 0.0
    learn_logvar: bool = False


@dataclass
class SyntheticConfig:
    """The built-in synthetic RadioMapSeer-like data, generated into ``cache_dir`` on first use.

    The cache folder is named by every field below and the generator's version, so a change makes a new set.
    """

    maps: int = 64
    tx_per_map: int = 8
    # pixels per side; the city is 256 m across whatever the size
    size: int = 256
    seed: int = 0
    cache_dir: str = "~/.cache/radiodiff/synthetic"


@dataclass
class DataConfig:
    """Where the gain maps come from and how they are split and shaped (see ``radiodiff.data``)."""

    source: Literal["synthetic", "radiomapseer", "datasets"] = "synthetic"
    # RadioMapSeer root folder, or for ``datasets``: a saved dataset, an image folder or a Hub id
    root: str | None = None
    # RadioMapSeer's gain/<simulation>/ folder (the synthetic source is DPM-like and ignores it)
    simulation: Literal["DPM", "IRT2", "IRT4", "carsDPM", "carsIRT2"] = "DPM"
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
    num_workers: int = 0
    # training split only: "dihedral" presents every map under the 8 flips and right-angle rotations of the square
    # (buildings and transmitter turned with it), so an epoch is 8 times longer; val and test are never augmented
    augment: Literal["none", "dihedral"] = "none"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class TrainConfig:
    """The loop: steps, batches, optimisation, precision, checkpoints, logging."""

    max_steps: int = 150000
    batch_size: int = 2
    seed: int = 42
    gradient_accumulation_steps: int = 1
    lr: float = 5e-6
    disc_lr: float | None = None
    min_lr: float = 5e-7
    lr_schedule: Literal["constant", "cosine", "poly"] = "poly"
    warmup_steps: int = 0
    # "muon": Muon for the hidden layers' weight matrices and convolution kernels, AdamW (the betas below) for the
    # rest and for the discriminator, at the same learning rate and schedule
    optimizer: Literal["adamw", "muon"] = "adamw"
    # Muon's Newton-Schulz iterations per step: 5 is its authors' (and torch's); fewer cost less and orthogonalise less
    muon_ns_steps: int = 5
    # Muon's Nesterov momentum (its authors' and torch's 0.95)
    muon_momentum: float = 0.95
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 1e-4
    max_grad_norm: float | None = None
    # "auto": bf16 autocast on a GPU that supports it and on a CPU with bf16 arithmetic (AVX512-BF16, AMX), fp32
    # elsewhere (master weights stay fp32 either way)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    channels_last: bool = False
    gradient_checkpointing: bool = False
    allow_tf32: bool = True
    compile: bool = False
    # one fused AdamW kernel over all parameters instead of a loop over them (same update, less overhead)
    fused_optimizer: bool = True
    use_ema: bool = True
    ema_decay: float = 0.995
    ema_update_every: int = 10
    save_every: int = 5000
    checkpoints_total_limit: int | None = 3
    sample_every: int = 5000
    num_sample_images: int = 4
    log_every: int = 100
    report_to: Literal["none", "tensorboard", "wandb", "trackio"] = "none"
    max_nonfinite_steps: int = 5
    # collectives that wait longer than this (a dead rank) stop the run instead of hanging
    collective_timeout_s: int = 600
    evaluate_at_end: bool = True
    # training maps whose latents set the exported scaling factor; 0 keeps model.scaling_factor
    latent_scale_maps: int = 1024
    push_to_hub: bool = False
    hub_repo_id: str | None = None


@dataclass
class Config:
    """A whole training run."""

    output_dir: str = "outputs/radiodiff-vae"
    model: VAEConfig = field(default_factory=VAEConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

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
    """The UNet and the condition encoder (``radiodiff.models.PRESETS``) and what the UNet predicts."""

    preset: Literal["tiny", "paper"] = "paper"
    formulation: Literal["radiodiff", "flow_matching"] = "radiodiff"
    # the fraction of training samples whose condition features are zeroed (0 = never)
    condition_dropout: float = 0.0


@dataclass
class DiffusionConfig:
    """The objective and the sampler of the samples and the end-of-run evaluation."""

    # RadioDiff's per-sample weights w1 = 2 exp(1 - t), w2 = exp(sqrt(t)) (the original's weighting_loss)
    weighting_loss: bool = True
    # add the L1 terms to the MSE (the original's use_l1)
    use_l1: bool = True
    # RadioDiff's sampler splits its last step in two (the original's denoise=True)
    split_last_step: bool = True
    sampling_steps: int = 5
    # RadioDiff's sampler: the share of the posterior noise each step draws (1: the original's sampler, 0:
    # deterministic, as DDIM's eta); saved in the exported scheduler's config
    eta: float = 1.0


@dataclass
class LatentsConfig:
    """Where the training latents come from: encoded each step by the frozen VAE, or `radiodiff encode-latents`."""

    source: Literal["on_the_fly", "encoded"] = "on_the_fly"
    # the `radiodiff encode-latents` folder of the training split (source: encoded)
    dir: str | None = None


@dataclass
class LDMTrainConfig(TrainConfig):
    """The loop, with the original second stage's settings as defaults (configs_old/BSDS_train_DPM.yaml)."""

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


_YAML_BOOL_WORDS = {False: ("no", "off", "false"), True: ("yes", "on", "true")}


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(annotation)[0])}"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked against ``annotation``; ints are accepted where floats are expected."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {annotation.__name__} keys, got {value!r}", key=key)
        return _build(annotation, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _convert(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}", key=key)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if isinstance(value, bool):
            # YAML 1.1 reads an unquoted no/off (yes/on) as a boolean; take it back as the word when it is a choice
            value = next((word for word in _YAML_BOOL_WORDS[value] if word in choices), value)
        if not isinstance(value, bool) and value in choices:
            return value
        raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}", key=key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}", key=key)
        (item_type,) = typing.get_args(annotation)
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if annotation is type(None):
        if value is None:
            return None
    elif annotation is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if abs(value) < 1e308 else math.inf
        elif isinstance(value, str):
            # PyYAML reads exponents without a dot (``5e-6``) as strings
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}", key=key)
            return number
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, annotation):
        return value
    raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}", key=key)


def _build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in valid]
    if unknown:
        key = f"{prefix}{unknown[0]}"
        nearest = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        suggestion = f"did you mean {prefix}{nearest[0]}? " if nearest else ""
        raise ConfigError(
            f"unknown key {key}; {suggestion}valid keys here: {', '.join(prefix + v for v in valid)}", key=key
        )
    return cls(**{key: _convert(value, hints[key], prefix + key) for key, value in values.items()})


# what both stages share: the loop and the data
_POSITIVE = (
    "train.max_steps", "train.batch_size", "train.gradient_accumulation_steps", "train.save_every",
    "train.sample_every", "train.log_every", "train.ema_update_every", "train.max_nonfinite_steps",
    "train.collective_timeout_s", "train.muon_ns_steps", "data.synthetic.maps", "data.synthetic.tx_per_map", "data.synthetic.size",
)
_POSITIVE_VAE = (
    "discriminator.n_layers", "discriminator.ndf", "discriminator.in_channels", "model.layers_per_block",
    "model.norm_num_groups", "model.in_channels", "model.out_channels", "model.latent_channels",
)


# counts where 0 means "none": train.num_sample_images=0 writes no sample sheets
_NON_NEGATIVE = (
    "train.num_sample_images", "train.latent_scale_maps", "train.warmup_steps", "data.num_workers",
)


def _check_counts(config: Any, positive: tuple[str, ...], non_negative: tuple[str, ...]) -> None:
    for dotted, least, expected in [(key, 1, "a positive integer") for key in positive] + [
        (key, 0, "a count of 0 or more") for key in non_negative
    ]:
        section, *rest = dotted.split(".")
        value = getattr(config, section)
        for part in rest:
            value = getattr(value, part)
        if value < least:
            raise ConfigError(f"{dotted}: expected {expected}, got {value}", key=dotted)


def _check_train(config: Any) -> None:
    """The checks of the loop's and the data's values, which both stages share."""
    _check_counts(config, _POSITIVE, _NON_NEGATIVE)
    limit = config.train.checkpoints_total_limit
    if limit is not None and limit < 1:
        raise ConfigError(
            f"train.checkpoints_total_limit: expected a positive integer or null (keep all), got {limit}",
            key="train.checkpoints_total_limit",
        )
    if config.train.lr <= 0:
        raise ConfigError(f"train.lr: expected a positive learning rate, got {config.train.lr}", key="train.lr")
    for name in ("ema_decay", "muon_momentum"):
        value = getattr(config.train, name)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"train.{name}: expected a value in [0, 1), got {value}", key=f"train.{name}")
    if config.train.push_to_hub and not config.train.hub_repo_id:
        raise ConfigError("train.push_to_hub: true needs train.hub_repo_id (USER/NAME)", key="train.push_to_hub")


def _check_values(config: Config) -> Config:
    """Checks that span keys or ranges, after the types are right."""
    _check_train(config)
    _check_counts(config, _POSITIVE_VAE, ())
    for name in ("kl_weight", "disc_weight", "perceptual_weight", "l1_weight"):
        if not getattr(config.loss, name) >= 0.0:
            raise ConfigError(f"loss.{name}: expected a weight of 0 or more, got {getattr(config.loss, name)}",
                              key=f"loss.{name}")
    channels = config.model.block_out_channels
    if not channels or any(c < 1 or c % config.model.norm_num_groups for c in channels):
        raise ConfigError(
            f"model.block_out_channels: {channels} must be non-empty multiples of model.norm_num_groups "
            f"({config.model.norm_num_groups})",
            key="model.block_out_channels",
        )
    levels = config.model.attention_levels
    if any(not 0 <= level < len(channels) for level in levels) or len(set(levels)) != len(levels):
        raise ConfigError(
            f"model.attention_levels: {levels}: expected distinct levels from 0 to {len(channels) - 1} "
            f"(one per entry of model.block_out_channels)",
            key="model.attention_levels",
        )
    return config


def _check_ldm_values(config: LDMConfig) -> LDMConfig:
    """The second stage's checks that span keys or ranges, after the types are right."""
    _check_train(config)
    _check_counts(config, ("diffusion.sampling_steps",), ())
    if not config.vae.path:
        raise ConfigError(
            "vae.path: required: the first stage's vae/ folder (or a Hub id), e.g. outputs/quickstart/vae", key="vae.path"
        )
    if not 0.0 <= config.diffusion.eta <= 1.0:
        raise ConfigError(
            f"diffusion.eta: expected a value in [0, 1] (1: the original sampler, 0: deterministic), got "
            f"{config.diffusion.eta}",
            key="diffusion.eta",
        )
    if config.diffusion.eta != 1.0 and config.denoiser.formulation != "radiodiff":
        raise ConfigError(
            f"diffusion.eta: {config.diffusion.eta} applies to RadioDiff's sampler only; flow matching's Euler "
            "sampler draws no noise (leave it at 1.0)",
            key="diffusion.eta",
        )
    if not 0.0 <= config.denoiser.condition_dropout < 1.0:
        raise ConfigError(
            f"denoiser.condition_dropout: expected a fraction in [0, 1), got {config.denoiser.condition_dropout}",
            key="denoiser.condition_dropout",
        )
    if config.latents.source == "encoded" and not config.latents.dir:
        raise ConfigError(
            "latents.dir: required with latents.source: encoded (a `radiodiff encode-latents` folder)", key="latents.dir"
        )
    if config.latents.source == "encoded" and config.data.augment != "none":
        raise ConfigError(
            f"data.augment: {config.data.augment!r}, but encoded latents are of the maps as they are; expected none "
            "with latents.source: encoded (or latents.source: on_the_fly to train on turned maps)",
            key="data.augment",
        )
    if config.train.disc_lr is not None:
        raise ConfigError(
            f"train.disc_lr: {config.train.disc_lr}, but the second stage has no discriminator; expected null",
            key="train.disc_lr",
        )
    return config


def config_from_dict(values: Mapping[str, Any], schema: type = Config) -> Any:
    """Validate a nested mapping (as read from YAML) into a :class:`Config` (or an :class:`LDMConfig`)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"expected a mapping at the top of the config, got {type(values).__name__}")
    check = _check_ldm_values if schema is LDMConfig else _check_values
    return check(_build(schema, values))


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``key=value`` overrides may also follow options (``a=1 --overwrite b=2``).

    argparse fills a ``nargs="*"`` positional once, so overrides after an option were refused as unrecognised; here
    they join ``overrides`` in the order given. Anything else unknown is still argparse's usual error.
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(token.startswith("-") or "=" not in token for token in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides to a nested mapping; values are read as YAML scalars."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected dotted.key=value")
        *parents, leaf = key.split(".")
        node = values
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {'.'.join(parents[: i + 1])} is not a section")
            node = child
        try:
            node[leaf] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(f"override {override!r}: the value is not valid YAML ({error})") from error
    return values


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file ({error})") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error})") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(values).__name__}")
    return values


def load_data_config(path: str | Path, overrides: list[str] | None = None) -> DataConfig:
    """The validated ``data`` section of a training config of either stage, with ``overrides`` applied (those of
    other sections are ignored): what evaluation and the cards need to find a run's maps."""
    values = apply_overrides(read_yaml(path), overrides or [])
    try:
        return config_from_dict({"data": values.get("data") or {}}).data
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def is_original_config(values: Mapping[str, Any]) -> bool:
    """True for the original RadioDiff first-stage YAML (``model.ddconfig``, ``trainer``)."""
    model = values.get("model")
    return "trainer" in values or (isinstance(model, Mapping) and "ddconfig" in model)


def _section(values: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    section = values.get(key) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}{key}: expected a mapping, got {section!r}")
    return section


# original RadioDiff key -> our dotted key, for keys that carry over one to one
_ORIGINAL_DIRECT = {
    "model.embed_dim": "model.latent_channels",
    "model.ddconfig.in_channels": "model.in_channels",
    "model.ddconfig.out_ch": "model.out_channels",
    "model.ddconfig.num_res_blocks": "model.layers_per_block",
    "model.lossconfig.disc_start": "loss.disc_start",
    "model.lossconfig.kl_weight": "loss.kl_weight",
    "model.lossconfig.disc_weight": "loss.disc_weight",
    "model.lossconfig.disc_factor": "loss.disc_factor",
    "model.lossconfig.disc_loss": "loss.disc_loss",
    "model.lossconfig.perceptual_weight": "loss.perceptual_weight",
    "model.lossconfig.logvar_init": "loss.logvar_init",
    "model.lossconfig.disc_in_channels": "discriminator.in_channels",
    "model.lossconfig.disc_num_layers": "discriminator.n_layers",
    "model.lossconfig.disc_ndf": "discriminator.ndf",
    "data.batch_size": "train.batch_size",
    "trainer.gradient_accumulate_every": "train.gradient_accumulation_steps",
    "trainer.lr": "train.lr",
    "trainer.min_lr": "train.min_lr",
    "trainer.train_num_steps": "train.max_steps",
    "trainer.log_freq": "train.log_every",
    "trainer.results_folder": "output_dir",
}


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_ldm_ddconfig(ddconfig: Mapping[str, Any], embed_dim: Any, where: str = "ddconfig") -> None:
    """Refuse the settings of an original (latent-diffusion) ``ddconfig`` that diffusers' ``AutoencoderKL``
    cannot express: attention inside the blocks, dropout, ``double_z: false``, ``z_channels != embed_dim``."""
    attn_resolutions, dropout = ddconfig.get("attn_resolutions") or [], ddconfig.get("dropout") or 0.0
    if not isinstance(attn_resolutions, (list, tuple)):
        raise ConfigError(f"{where}.attn_resolutions: expected a list, got {attn_resolutions!r}")
    if not _is_number(dropout):
        raise ConfigError(f"{where}.dropout: expected a number, got {dropout!r}")
    if attn_resolutions:
        raise ConfigError(
            f"{where}.attn_resolutions: {list(attn_resolutions)} asks for attention inside the down/up blocks, "
            "which AutoencoderKL cannot express; expected []"
        )
    if dropout != 0.0:
        raise ConfigError(f"{where}.dropout: {dropout}; AutoencoderKL has no dropout, expected 0.0")
    if ddconfig.get("double_z", True) is not True:
        raise ConfigError(f"{where}.double_z: AutoencoderKL always predicts mean and log-variance; expected true")
    z_channels = ddconfig.get("z_channels")
    if z_channels is not None and embed_dim is not None and z_channels != embed_dim:
        raise ConfigError(
            f"{where}.z_channels ({z_channels}) != embed_dim ({embed_dim}); AutoencoderKL uses one latent width for both"
        )


def translate_original_config(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Translate the original RadioDiff first-stage YAML into ours; returns it and one note per original key."""
    model = _section(values, "model", "")
    flat: dict[str, Any] = {}
    for name, section in (("model", model), ("data", _section(values, "data", "")), ("trainer", _section(values, "trainer", ""))):
        for key, value in section.items():
            if name == "model" and key in ("ddconfig", "lossconfig"):
                for inner_key, inner_value in _section(model, key, "model.").items():
                    flat[f"model.{key}.{inner_key}"] = inner_value
            else:
                flat[f"{name}.{key}"] = value
    ignored_top = sorted(set(values) - {"model", "data", "trainer"})

    translated: dict[str, Any] = {"loss": {}, "train": {"lr_schedule": "poly"}}
    notes: list[str] = []

    def put(dotted: str, value: Any) -> None:
        *parents, leaf = dotted.split(".")
        node = translated
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    for original, value in flat.items():
        if original in _ORIGINAL_DIRECT:
            put(_ORIGINAL_DIRECT[original], value)
            notes.append(f"{original}: {value!r} -> {_ORIGINAL_DIRECT[original]}")
        elif original == "model.ddconfig.ch" or original == "model.ddconfig.ch_mult":
            continue  # combined below
        elif original == "model.ddconfig.z_channels":
            notes.append(f"{original}: {value!r} -> model.latent_channels (diffusers uses one width for z and embed_dim)")
        elif original == "model.ddconfig.resolution":
            notes.append(
                f"{original}: {value!r} -> not applied: the original loader never resized the maps; "
                "set data.resolution (with data.allow_resize=true) to resize"
            )
        elif original in ("model.ddconfig.double_z", "model.ddconfig.attn_resolutions", "model.ddconfig.dropout"):
            notes.append(f"{original}: {value!r} -> checked (AutoencoderKL: double_z, no attention in blocks, no dropout)")
        elif original == "model.lossconfig.use_actnorm":
            put("discriminator.norm", "actnorm" if value else "batch")
            notes.append(f"{original}: {value!r} -> discriminator.norm")
        elif original == "trainer.save_and_sample_every":
            put("train.save_every", value)
            put("train.sample_every", value)
            notes.append(f"{original}: {value!r} -> train.save_every and train.sample_every")
        elif original in ("trainer.amp", "trainer.fp16"):
            continue  # combined below
        elif original == "data.name":
            put("data.source", "radiomapseer")
            notes.append(f"{original}: {value!r} -> data.source: radiomapseer (give data.root=<RadioMapSeer folder>)")
        elif original == "model.ckpt_path":
            notes.append(f"{original}: {value!r} -> not loaded: convert it with `radiodiff convert`, then set model.pretrained")
        elif original == "trainer.resume_milestone":
            notes.append(f"{original}: {value!r} -> not used: resume with --resume latest or --resume <checkpoint folder>")
        else:
            notes.append(f"{original}: {value!r} -> ignored (no equivalent)")

    ddconfig = _section(model, "ddconfig", "model.")
    check_ldm_ddconfig(ddconfig, model.get("embed_dim"), "model.ddconfig")
    if "ch" in ddconfig or "ch_mult" in ddconfig:
        ch, ch_mult = ddconfig.get("ch", 128), ddconfig.get("ch_mult", [1, 2, 4])
        if not _is_integer(ch) or not isinstance(ch_mult, list) or not all(_is_integer(m) for m in ch_mult):
            raise ConfigError(
                f"model.ddconfig.ch {ch!r} and ch_mult {ch_mult!r}: expected an integer and a list of integers"
            )
        put("model.block_out_channels", [ch * m for m in ch_mult])
        notes.append(f"model.ddconfig.ch {ch!r} x ch_mult {ch_mult!r} -> model.block_out_channels")
    trainer = _section(values, "trainer", "")
    if "amp" in trainer or "fp16" in trainer:
        precision = "fp16" if trainer.get("amp") or trainer.get("fp16") else "no"
        put("train.mixed_precision", precision)
        notes.append(f"trainer.amp {trainer.get('amp')!r} / trainer.fp16 {trainer.get('fp16')!r} -> train.mixed_precision: {precision}")
    notes.append("schedule -> train.lr_schedule: poly ((1 - t/T)^0.95, floored at train.min_lr)")
    notes.extend(f"{key}: ignored (no equivalent)" for key in ignored_top)
    return translated, notes


def read_config(path: str | Path | None = None, overrides: list[str] | None = None) -> tuple[Config, list[str]]:
    """Read ``path`` (ours or the original RadioDiff YAML), apply ``overrides`` and validate.

    Returns the config and, for an original RadioDiff YAML, one note per original key saying what it became.
    """
    values = read_yaml(path) if path is not None else {}
    notes: list[str] = []
    if is_original_config(values):
        values, notes = translate_original_config(values)
    overrides = overrides or []
    values = apply_overrides(values, overrides)
    try:
        return config_from_dict(values), notes
    except ConfigError as error:
        raise ConfigError(f"{_where_set(error.key, path, overrides)}{error}", key=error.key) from None


def _where_set(key: str | None, path: str | Path | None, overrides: list[str]) -> str:
    """``"command-line override 'k=v': "`` when ``key`` was set on the command line, else ``"<file>: "``."""
    for override in reversed(overrides):
        overridden = override.partition("=")[0]
        if key is not None and (
            key == overridden or key.startswith((overridden + ".", overridden + "[")) or overridden.startswith(key + ".")
        ):
            return f"command-line override {override!r}: "
    return f"{path}: " if path else ""


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read ``path`` (or the defaults), apply ``overrides`` and validate."""
    return read_config(path, overrides)[0]


def read_ldm_config(path: str | Path | None = None, overrides: list[str] | None = None) -> tuple[LDMConfig, list[str]]:
    """Read a second-stage config ``path``, apply ``overrides`` and validate; there are no translation notes."""
    overrides = overrides or []
    values = apply_overrides(read_yaml(path) if path is not None else {}, overrides)
    try:
        return config_from_dict(values, LDMConfig), []
    except ConfigError as error:
        raise ConfigError(f"{_where_set(error.key, path, overrides)}{error}", key=error.key) from None


def save_config(config: Config | LDMConfig, path: str | Path) -> None:
    """Write ``config`` as YAML, replacing ``path`` atomically."""
    write_atomically(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
