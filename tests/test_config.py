import pytest

from radiodiff.config import ConfigError, load_config, read_config, save_config

ORIGINAL_YAML = "configs/radiodiff_original_first_stage.yaml"


def test_dotted_overrides_reach_nested_fields():
    config = load_config(
        None, ["train.max_steps=10", "model.block_out_channels=[8, 16]", "model.norm_num_groups=4", "data.synthetic.maps=3"]
    )
    assert config.train.max_steps == 10
    assert config.model.block_out_channels == [8, 16]
    assert config.data.synthetic.maps == 3


def test_unknown_key_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError) as error:
        load_config(None, ["train.max_step=10"])
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
        load_config(None, [override])


def test_exponents_without_a_dot_are_read_as_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 5e-6\n")
    assert load_config(path).train.lr == 5e-6


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: {max_steps: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_saved_config_loads_back_equal(tmp_path):
    config = load_config("configs/quickstart.yaml", ["train.max_steps=7"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_shipped_configs_validate():
    paper = load_config("configs/radiodiff_vae.yaml")
    assert paper.model.block_out_channels == [128, 256, 512]
    assert (paper.loss.kl_weight, paper.loss.disc_weight, paper.loss.disc_start) == (1e-6, 0.5, 50001)
    assert (paper.train.batch_size, paper.train.lr, paper.train.min_lr, paper.train.max_steps) == (2, 5e-6, 5e-7, 150000)
    assert (paper.train.save_every, paper.train.sample_every, paper.train.log_every) == (5000, 5000, 100)
    assert paper.train.mixed_precision == "no" and paper.discriminator.in_channels == 1
    assert paper.data.augment == "none"  # the paper trained on the maps as they are
    quickstart = load_config("configs/quickstart.yaml")
    assert 0 < quickstart.loss.disc_start < quickstart.train.max_steps
    assert quickstart.data.augment == "dihedral"


def test_original_radiodiff_yaml_is_translated_with_a_note_per_key():
    config, notes = read_config(ORIGINAL_YAML)
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
    """The same check as ``RadioDiffVAE.from_ldm_config``'s, so both refuse the same settings."""
    path = tmp_path / "first_radio.yaml"
    path.write_text(open(ORIGINAL_YAML).read().replace(original, changed))
    with pytest.raises(ConfigError, match=expected):
        read_config(path)


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
        load_config(None, [override])


def test_counts_of_0_mean_none():
    config = load_config(None, ["train.num_sample_images=0", "train.latent_scale_maps=0", "data.num_workers=0"])
    assert (config.train.num_sample_images, config.train.latent_scale_maps) == (0, 0)


def test_an_unquoted_no_is_the_word_where_the_choices_are_words(tmp_path):
    assert load_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  mixed_precision: no\n")
    assert load_config(path).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="train.report_to"):
        load_config(None, ["train.report_to=yes"])


def test_an_override_typo_is_blamed_on_the_command_line_with_the_nearest_key():
    with pytest.raises(ConfigError) as error:
        load_config("configs/quickstart.yaml", ["train.max_step=10"])
    message = str(error.value)
    assert message.startswith("command-line override 'train.max_step=10': unknown key train.max_step;")
    assert "did you mean train.max_steps?" in message and "quickstart.yaml" not in message


@pytest.mark.parametrize(
    "override, blamed",
    [("trian.max_steps=10", "did you mean train?"), ("train.batch_size=0", "train.batch_size: expected a positive")],
)
def test_override_errors_name_the_override(override, blamed):
    with pytest.raises(ConfigError) as error:
        load_config("configs/quickstart.yaml", [override])
    assert str(error.value).startswith(f"command-line override {override!r}: ") and blamed in str(error.value)


def test_a_typo_in_the_file_is_blamed_on_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  max_step: 10\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["train.batch_size=4"])
    assert str(error.value).startswith(f"{path}: unknown key train.max_step; did you mean train.max_steps?")


@pytest.mark.parametrize("overrides, expected", [
    (["diffusion.eta=1.5"], r"diffusion.eta: expected a value in \[0, 1\].*got 1.5"),
    (["diffusion.eta=0", "denoiser.formulation=flow_matching"], "diffusion.eta: 0.0 applies to RadioDiff's sampler only"),
])
def test_second_stage_eta_outside_zero_one_or_with_flow_matching_is_an_error(overrides, expected):
    from radiodiff.config import read_ldm_config

    with pytest.raises(ConfigError, match=expected) as error:
        read_ldm_config(None, ["vae.path=outputs/quickstart/vae", *overrides])
    assert error.value.key == "diffusion.eta"


def test_overrides_may_follow_an_option_in_both_trainers_and_the_cli(capsys):
    from radiodiff.cli import build_parser as build_cli_parser
    from radiodiff.config import parse_arguments
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
