"""Fuzzing the config loader: whatever the text, it loads or raises ConfigError, never anything else."""

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radiodiff.config import ConfigError, VAEConfig, config_from_dict, load_vae_config, read_vae_config

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def dotted_keys(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        keys.extend(dotted_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])
    return keys


CONFIG_KEYS = dotted_keys(VAEConfig().to_dict())
ORIGINAL_KEYS = [
    "model.embed_dim", "model.ddconfig.ch", "model.ddconfig.ch_mult", "model.ddconfig.dropout",
    "model.ddconfig.attn_resolutions", "model.ddconfig.z_channels", "model.ddconfig.double_z",
    "model.lossconfig.disc_start", "model.lossconfig.use_actnorm", "trainer.amp", "trainer.fp16",
    "trainer.save_and_sample_every", "trainer.lr", "data.name", "data.batch_size",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers().map(lambda i: i * 10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
yaml_keys = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))


def nest(dotted: str, value) -> dict:
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def loads_or_raises_config_error(load) -> None:
    try:
        load()
    except ConfigError:
        pass


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text_as_a_config_file_loads_or_raises_config_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    loads_or_raises_config_error(lambda: read_vae_config(path))


@FUZZ
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_as_a_config_file_load_or_raise_config_error(tmp_path, data):
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    loads_or_raises_config_error(lambda: read_vae_config(path))


@FUZZ
@given(overrides=st.lists(st.text(max_size=40), max_size=4))
def test_arbitrary_override_strings_load_or_raise_config_error(overrides):
    loads_or_raises_config_error(lambda: load_vae_config(None, overrides))


@FUZZ
@given(key=st.sampled_from(CONFIG_KEYS), value=values)
def test_any_value_for_a_real_key_loads_or_raises_config_error(key, value):
    override = f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
    loads_or_raises_config_error(lambda: load_vae_config(None, [override]))
    loads_or_raises_config_error(lambda: config_from_dict(nest(key, value)))


@FUZZ
@given(tree=st.dictionaries(yaml_keys, values, max_size=5))
def test_arbitrary_mappings_load_or_raise_config_error(tmp_path, tree):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    loads_or_raises_config_error(lambda: read_vae_config(path))


@FUZZ
@given(entries=st.dictionaries(st.sampled_from(ORIGINAL_KEYS), values, min_size=1, max_size=6))
def test_arbitrary_original_radiodiff_configs_translate_or_raise_config_error(tmp_path, entries):
    tree: dict = {"model": {"ddconfig": {}}}
    for dotted, value in entries.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = tmp_path / "original.yaml"
    path.write_text(yaml.safe_dump(tree))
    loads_or_raises_config_error(lambda: read_vae_config(path))


@pytest.mark.parametrize(
    "text",
    [
        "model:\n  block_out_channels: &channels [8, *channels]\n",  # a list that contains itself
        "train:\n  lr: .nan\n",
        "loss:\n  kl_weight: .inf\n",
        "model:\n  norm_num_groups: 0\n",
        "train:\n  max_steps: 100000000000000000000000000000000000000000\n  save_every: 0\n",
        "? [1, 2]\n: 3\n",
    ],
)
def test_known_awkward_configs_raise_config_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        read_vae_config(path)


def test_non_finite_numbers_are_refused_with_the_key_named():
    with pytest.raises(ConfigError, match="train.lr: expected a finite number, got nan"):
        load_vae_config(None, ["train.lr=.nan"])
    assert math.isfinite(load_vae_config(None, ["train.lr=1e-4"]).train.lr)
