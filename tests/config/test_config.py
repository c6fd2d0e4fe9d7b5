import dataclasses
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from radiodiff.config import (
    ConfigError,
    DenoiserConfig,
    DiscriminatorConfig,
    LDMConfig,
    LDMTrainConfig,
    RadioUNetConfig,
    VAEConfig,
    VAEGANLossConfig,
    VAEModelConfig,
    load_vae_config,
    read_ldm_config,
    read_radiounet_config,
    read_vae_config,
    save_config,
)
from radiodiff.config.checks import POSITIVE, _range_of

ORIGINAL_YAML = "configs/radiodiff_original_first_stage.yaml"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VAE_PATH = "vae.path=outputs/quickstart/vae"


def test_dotted_overrides_reach_nested_fields():
    config = load_vae_config(
        None, ["train.max_steps=10", "model.block_out_channels=[8, 16]", "model.norm_num_groups=4", "data.synthetic.maps=3"]
    )
    assert config.train.max_steps == 10
    assert config.model.block_out_channels == [8, 16]
    assert config.data.synthetic.maps == 3


def test_unknown_key_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        load_vae_config(None, ["train.max_step=10"])
    message = str(error.value)
    assert "train.max_step" in message and "train.max_steps" in message and "train.batch_size" in message


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.max_steps=1.5", "train.max_steps: expected int"),
        ("train.batch_size=true", "train.batch_size: expected int"),
        ("loss.disc_loss=wasserstein", "one of 'hinge', 'vanilla'"),
        ("train.lr=fast", "train.lr: expected float"),
        ("model.block_out_channels=8", "a list of int"),
        ("train=3", "train: expected a mapping"),
    ],
)
def test_wrong_types_are_rejected_with_the_key(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_vae_config(None, [override])


def test_exponents_without_a_dot_are_read_as_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 5e-6\n")
    assert load_vae_config(path).train.lr == 5e-6


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: {max_steps: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_vae_config(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_vae_config(tmp_path / "nope.yaml")


def test_saved_config_loads_back_equal(tmp_path):
    config = load_vae_config("configs/quickstart.yaml", ["train.max_steps=7"])
    save_config(config, tmp_path / "config.yaml")
    assert load_vae_config(tmp_path / "config.yaml") == config


def test_shipped_configs_validate():
    paper = load_vae_config("configs/radiodiff_vae.yaml")
    assert paper.model.block_out_channels == [128, 256, 512]
    assert (paper.loss.kl_weight, paper.loss.disc_weight, paper.loss.disc_start) == (1e-6, 0.5, 50001)
    assert (paper.train.batch_size, paper.train.lr, paper.train.min_lr, paper.train.max_steps) == (2, 5e-6, 5e-7, 150000)
    assert (paper.train.save_every, paper.train.sample_every, paper.train.log_every) == (5000, 5000, 100)
    assert paper.train.mixed_precision == "no" and paper.discriminator.in_channels == 1
    assert paper.data.augment == "none"  # the paper trained on the maps as they are
    quickstart = load_vae_config("configs/quickstart.yaml")
    assert 0 < quickstart.loss.disc_start < quickstart.train.max_steps
    assert quickstart.data.augment == "dihedral"


def test_original_radiodiff_yaml_is_translated_with_a_note_per_key():
    config, notes = read_vae_config(ORIGINAL_YAML)
    assert config.model.block_out_channels == [128, 256, 512]
    assert config.model.layers_per_block == 2 and config.model.latent_channels == 3
    assert (config.loss.disc_start, config.loss.kl_weight, config.loss.disc_weight) == (50001, 1e-6, 0.5)
    assert config.discriminator.in_channels == 1
    assert (config.train.lr, config.train.min_lr, config.train.max_steps) == (5e-6, 5e-7, 150000)
    assert config.train.save_every == config.train.sample_every == 5000
    assert config.train.lr_schedule == "poly" and config.train.mixed_precision == "no"
    assert config.output_dir == "./radiodiff_Vae" and config.data.source == "radiomapseer"
    text = "\n".join(notes)
    for original_key in ("trainer.train_num_steps", "model.ddconfig.resolution", "model.ckpt_path", "trainer.resume_milestone",
                         "model.lossconfig.disc_in_channels", "trainer.save_and_sample_every", "data.batch_size"):
        assert original_key in text
    assert "never resized" in text


@pytest.mark.parametrize(
    "original, changed, expected",
    [
        ("attn_resolutions: []", "attn_resolutions: [16]", r"model.ddconfig.attn_resolutions: \[16\]"),
        ("double_z: True", "double_z: False", "model.ddconfig.double_z"),
        ("z_channels: 3", "z_channels: 4", r"model.ddconfig.z_channels \(4\) != embed_dim \(3\)"),
    ],
)
def test_original_yaml_that_autoencoderkl_cannot_express_is_refused(tmp_path, original, changed, expected):
    """The same check as ``RadioDiffVAE.from_compvis_config``'s, so both refuse the same settings."""
    path = tmp_path / "first_radio.yaml"
    path.write_text(open(ORIGINAL_YAML).read().replace(original, changed))
    with pytest.raises(ConfigError, match=expected):
        read_vae_config(path)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.batch_size=0", "train.batch_size: expected a positive integer"),
        ("train.lr=0", "train.lr: expected a positive"),
        ("train.ema_decay=1.5", "train.ema_decay"),
        ("train.push_to_hub=true", "hub_repo_id"),
        ("model.norm_num_groups=5", "multiples of model.norm_num_groups"),
        ("train.num_sample_images=-1", "train.num_sample_images: expected a count of 0 or more, got -1"),
        ("train.latent_scale_maps=-4", "train.latent_scale_maps: expected a count of 0 or more"),
        ("train.checkpoints_total_limit=0", "train.checkpoints_total_limit: expected a positive integer or null"),
        ("loss.l1_weight=-1", "loss.l1_weight: expected a weight of 0 or more, got -1"),
        ("loss.disc_weight=-0.5", "loss.disc_weight: expected a weight of 0 or more, got -0.5"),
    ],
)
def test_values_out_of_range_are_rejected(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_vae_config(None, [override])


def test_counts_of_0_mean_none():
    config = load_vae_config(None, ["train.num_sample_images=0", "train.latent_scale_maps=0", "data.num_workers=0"])
    assert (config.train.num_sample_images, config.train.latent_scale_maps) == (0, 0)


def test_an_unquoted_no_is_the_word_where_the_choices_are_words(tmp_path):
    assert load_vae_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  mixed_precision: no\n")
    assert load_vae_config(path).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="train.report_to"):
        load_vae_config(None, ["train.report_to=yes"])


def test_an_override_typo_is_blamed_on_the_command_line_with_the_nearest_key():
    with pytest.raises(ConfigError) as error:
        load_vae_config("configs/quickstart.yaml", ["train.max_step=10"])
    message = str(error.value)
    assert message.startswith("command-line override 'train.max_step=10': unknown key train.max_step;")
    assert "did you mean train.max_steps?" in message and "quickstart.yaml" not in message


@pytest.mark.parametrize(
    "override, blamed",
    [("trian.max_steps=10", "did you mean train?"), ("train.batch_size=0", "train.batch_size: expected a positive")],
)
def test_override_errors_name_the_override(override, blamed):
    with pytest.raises(ConfigError) as error:
        load_vae_config("configs/quickstart.yaml", [override])
    assert str(error.value).startswith(f"command-line override {override!r}: ") and blamed in str(error.value)


def test_a_typo_in_the_file_is_blamed_on_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  max_step: 10\n")
    with pytest.raises(ConfigError) as error:
        load_vae_config(path, ["train.batch_size=4"])
    assert str(error.value).startswith(f"{path}: unknown key train.max_step; did you mean train.max_steps?")


@pytest.mark.parametrize("overrides, expected", [
    (["diffusion.eta=1.5"], r"diffusion.eta: expected a value in \[0, 1\].*got 1.5"),
    (["diffusion.eta=0", "denoiser.formulation=flow_matching"],
     "diffusion.eta: 0.0 applies to samplers that draw noise; the flow_matching formulation's draws none"),
])
def test_second_stage_eta_outside_zero_one_or_with_flow_matching_is_an_error(overrides, expected):
    with pytest.raises(ConfigError, match=expected) as error:
        read_ldm_config(None, ["vae.path=outputs/quickstart/vae", *overrides])
    assert error.value.key == "diffusion.eta"


def test_overrides_may_follow_an_option_in_both_trainers_and_the_cli(capsys):
    from radiodiff.cli import build_parser as build_cli_parser
    from radiodiff.arguments import parse_arguments
    from radiodiff.training.entry import LDM_COMMAND, build_parser

    args = parse_arguments(build_parser(), ["--config", "c.yaml", "a.b=1", "--overwrite", "c.d=2", "e=3"])
    assert args.overwrite and args.overrides == ["a.b=1", "c.d=2", "e=3"]
    args = parse_arguments(build_parser(LDM_COMMAND), ["x=1", "--resume", "latest", "y=2"])
    assert args.resume == "latest" and args.overrides == ["x=1", "y=2"]
    args = parse_arguments(build_cli_parser(), ["evaluate", "--model", "m", "a=1", "--split", "test", "b=2"])
    assert args.split == "test" and args.overrides == ["a=1", "b=2"]
    # anything that is not an override is still refused, naming it
    for argv in (["a=1", "--overwrite", "--bogus"], ["a=1", "--overwrite", "stray"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_arguments(build_parser(), argv)
        assert exit_info.value.code == 2
        assert f"unrecognized arguments: {argv[-1]}" in capsys.readouterr().err


def _checked_keys(config, prefix=""):
    """(dotted key, its field type, its range) of every key of ``config`` that declares a range."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            yield from _checked_keys(value, f"{prefix}{field.name}.")
        elif (check := _range_of(type(config), field.name)) is not None:
            yield f"{prefix}{field.name}", hints[field.name], check


def _out_of_range(annotation, check):
    candidates = (0, -1) if int in (annotation, *typing.get_args(annotation)) else (-1.0, 0.0, 1.0, 1.5)
    return next(value for value in candidates if not check.accepts(value))


FIRST_STAGE_RANGES = list(_checked_keys(VAEConfig()))
SECOND_STAGE_RANGES = list(_checked_keys(LDMConfig()))


@pytest.mark.parametrize("key, annotation, check", FIRST_STAGE_RANGES, ids=[k for k, *_ in FIRST_STAGE_RANGES])
def test_every_first_stage_range_refuses_a_value_outside_it_naming_the_key(key, annotation, check):
    value = _out_of_range(annotation, check)
    with pytest.raises(ConfigError) as error:
        load_vae_config(None, [f"{key}={value}"])
    assert str(error.value) == f"command-line override '{key}={value}': {key}: expected {check.expected}, got {value}"
    assert error.value.key == key


@pytest.mark.parametrize("key, annotation, check", SECOND_STAGE_RANGES, ids=[k for k, *_ in SECOND_STAGE_RANGES])
def test_every_second_stage_range_refuses_a_value_outside_it_naming_the_key(key, annotation, check):
    value = _out_of_range(annotation, check)
    with pytest.raises(ConfigError) as error:
        read_ldm_config(None, [VAE_PATH, f"{key}={value}"])
    assert str(error.value) == f"command-line override '{key}={value}': {key}: expected {check.expected}, got {value}"


def test_the_ranges_cover_every_count_and_rate_that_was_checked_before_the_schema_held_them():
    first = {key for key, *_ in FIRST_STAGE_RANGES}
    second = {key for key, *_ in SECOND_STAGE_RANGES}
    shared = {
        "train.max_steps", "train.batch_size", "train.gradient_accumulation_steps", "train.save_every",
        "train.sample_every", "train.log_every", "train.ema_update_every", "train.max_nonfinite_steps",
        "train.collective_timeout_s", "train.muon_ns_steps", "data.synthetic.maps", "data.synthetic.tx_per_map",
        "data.synthetic.size", "train.num_sample_images", "train.warmup_steps", "data.num_workers",
        "train.checkpoints_total_limit", "train.lr", "train.ema_decay", "train.muon_momentum",
    }
    assert shared | {
        "discriminator.n_layers", "discriminator.ndf", "discriminator.in_channels", "model.layers_per_block",
        "model.norm_num_groups", "model.in_channels", "model.out_channels", "model.latent_channels",
        "loss.kl_weight", "loss.disc_weight", "loss.perceptual_weight", "loss.l1_weight", "train.latent_scale_maps",
    } == first
    assert shared | {"diffusion.sampling_steps", "diffusion.eta", "denoiser.condition_dropout"} == second


def test_a_stage_that_changes_a_shared_key_s_default_keeps_its_range():
    assert LDMTrainConfig().max_steps == 50000 and _range_of(LDMTrainConfig, "max_steps") is POSITIVE


@pytest.mark.parametrize(
    "read, key, value",
    [
        (read_ldm_config, "train.disc_lr", "1e-4"),
        (read_ldm_config, "train.latent_scale_maps", "16"),
        (read_ldm_config, "train.channels_last", "true"),
        (read_ldm_config, "model.latent_channels", "4"),
        (read_ldm_config, "loss.kl_weight", "0"),
        (read_vae_config, "vae.path", "outputs/quickstart/vae"),
        (read_vae_config, "denoiser.preset", "tiny"),
        (read_vae_config, "diffusion.sampling_steps", "2"),
    ],
)
def test_a_key_of_the_other_stage_is_unknown_where_it_was_set(tmp_path, read, key, value):
    with pytest.raises(ConfigError) as error:
        read(None, [VAE_PATH, f"{key}={value}"] if read is read_ldm_config else [f"{key}={value}"])
    override = f"{key}={value}"
    assert str(error.value).startswith(f"command-line override {override!r}: unknown key {key.partition('.')[0]}")
    section, _, leaf = key.partition(".")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"vae": {"path": "v"}, section: {leaf: yaml.safe_load(value)}}))
    with pytest.raises(ConfigError) as error:
        read(path)
    assert str(error.value).startswith(f"{path}: unknown key {key if section == 'train' else section}")


def test_a_first_stage_key_in_the_second_stage_names_the_nearest_valid_key():
    with pytest.raises(ConfigError) as error:
        read_ldm_config("configs/ldm_quickstart.yaml", ["train.disc_lr=1e-4"])
    message = str(error.value)
    assert message.startswith("command-line override 'train.disc_lr=1e-4': unknown key train.disc_lr; did you mean")
    assert "valid keys here: train.max_steps" in message and "train.latent_scale_maps" not in message


@pytest.mark.parametrize("path", sorted(Path("configs").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_config_loads_in_its_stage(path):
    if "ldm" in path.name:
        config, _ = read_ldm_config(path)
        train_keys = set(yaml.safe_load(path.read_text())["train"])
        # a first-stage key with an old save's value would load (and be dropped): a shipped config has none
        assert train_keys <= {field.name for field in dataclasses.fields(LDMTrainConfig)}
        assert isinstance(config, LDMConfig)
    elif "radiounet" in path.name:
        assert isinstance(read_radiounet_config(path)[0], RadioUNetConfig)
    else:
        assert isinstance(read_vae_config(path)[0], VAEConfig)


def test_a_second_stage_config_saved_with_the_first_stage_s_train_keys_still_loads(tmp_path):
    saved = FIXTURES / "ldm_config_saved_before_stage_keys.yaml"
    assert {"disc_lr", "channels_last", "latent_scale_maps"} <= set(yaml.safe_load(saved.read_text())["train"])
    config, _ = read_ldm_config(saved)
    assert config == read_ldm_config("configs/ldm_quickstart.yaml")[0]
    save_config(config, tmp_path / "config.yaml")
    assert "disc_lr" not in (tmp_path / "config.yaml").read_text()
    assert read_ldm_config(tmp_path / "config.yaml")[0] == config


def test_a_first_stage_config_saved_before_the_stages_had_their_own_keys_still_loads():
    config = load_vae_config(FIXTURES / "vae_config_saved_before_stage_keys.yaml")
    # the quickstart as it was when the fixture was saved: 2,200 steps since shortened
    as_then = ["loss.disc_start=1870", "train.max_steps=2200", "train.save_every=550", "train.sample_every=550"]
    assert config == load_vae_config("configs/quickstart.yaml", as_then)


@pytest.mark.parametrize("key, value", [("disc_lr", 1e-4), ("latent_scale_maps", 16), ("channels_last", True),
                                        ("latent_scale_maps", 1024.0), ("channels_last", 0)])
def test_an_old_second_stage_key_is_dropped_only_with_the_value_old_saves_wrote(tmp_path, key, value):
    values = yaml.safe_load((FIXTURES / "ldm_config_saved_before_stage_keys.yaml").read_text())
    values["train"][key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError, match=f"unknown key train.{key};"):
        read_ldm_config(path)


def _init_defaults(function):
    return {p.name: p.default for p in inspect.signature(function).parameters.values() if p.default is not p.empty}


def test_the_model_sections_default_to_the_models_own_defaults():
    from radiodiff import PatchGANDiscriminator, RadioDiffVAE, VAEGANLoss

    vae = _init_defaults(RadioDiffVAE.__init__)
    model = dataclasses.asdict(VAEModelConfig())
    assert model.pop("pretrained") is None
    assert model.pop("attention_levels") == list(_init_defaults(RadioDiffVAE.from_block_channels)["attention_levels"])
    assert model == {key: list(vae[key]) if isinstance(vae[key], tuple) else vae[key] for key in model}
    assert dataclasses.asdict(DiscriminatorConfig()) == _init_defaults(PatchGANDiscriminator.__init__)
    loss = _init_defaults(VAEGANLoss.__init__)
    del loss["perceptual_model"]  # a module, not a config value
    assert dataclasses.asdict(VAEGANLossConfig()) == loss


def test_the_config_s_choices_are_the_models_choices():
    from radiodiff.losses import DISC_LOSSES
    from radiodiff.models import PRESETS
    from radiodiff.models.discriminator import NORMS

    def choices(cls, name):
        return set(typing.get_args(typing.get_type_hints(cls)[name]))

    assert choices(DiscriminatorConfig, "norm") == set(NORMS)
    assert choices(VAEGANLossConfig, "disc_loss") == set(DISC_LOSSES)
    assert choices(DenoiserConfig, "preset") == set(PRESETS)


def test_the_formulations_are_the_registered_ones_and_another_name_is_an_error():
    from radiodiff.schedulers import FORMULATIONS

    for name in FORMULATIONS:
        assert read_ldm_config(None, ["vae.path=v", f"denoiser.formulation={name}"])[0].denoiser.formulation == name
    with pytest.raises(ConfigError, match="denoiser.formulation: 'ddpm'; expected one of 'radiodiff', 'flow_matching', 'regression'"):
        read_ldm_config(None, ["vae.path=v", "denoiser.formulation=ddpm"])


def test_importing_the_config_imports_neither_torch_nor_diffusers():
    code = "import sys, radiodiff.config; print(sorted({'torch', 'diffusers'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
