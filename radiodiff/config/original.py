"""The original RadioDiff first-stage YAML (``model.ddconfig``, ``model.lossconfig``, ``trainer``) into ours."""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ConfigError


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
    # what AutoencoderKL can express is the model's to say (importing it imports torch: only here, not for our YAML)
    from ..models.vae import check_compvis_ddconfig

    try:
        check_compvis_ddconfig(ddconfig, model.get("embed_dim"), "model.ddconfig")
    except ValueError as error:
        raise ConfigError(str(error)) from None
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
