"""Small files written in place are replaced whole: an interrupted write leaves the previous file."""

import os

import pytest

from radiodiff import file_writing
from radiodiff.config import load_vae_config, save_config
from radiodiff.hub import write_vae_model_card

from tests.hub.test_vae_card_and_push import make_training_run


def fail_renames(monkeypatch):
    """Every write fails between writing the new content and renaming it into place."""

    def fail(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_writing.os, "replace", fail)


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "training_summary.json"
    path.write_text('{"steps": 8}')
    fail_renames(monkeypatch)
    with pytest.raises(OSError):
        file_writing.write_atomically(path, '{"steps": 16}')
    assert path.read_text() == '{"steps": 8}' and os.listdir(tmp_path) == [path.name]


def test_config_yaml_and_the_model_card_are_replaced_whole(tmp_path, monkeypatch):
    run = make_training_run(tmp_path / "run")
    (run / "README.md").write_text("the previous card")
    before = (run / "config.yaml").read_text()
    fail_renames(monkeypatch)

    with pytest.raises(OSError):
        save_config(load_vae_config(overrides=["train.max_steps=3"]), run / "config.yaml")
    with pytest.raises(OSError):
        write_vae_model_card(run)

    assert (run / "config.yaml").read_text() == before
    assert (run / "README.md").read_text() == "the previous card"
    assert not [name for name in os.listdir(run) if name.endswith(".tmp")]
