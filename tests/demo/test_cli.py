"""``radiodiff demo``: a wrong folder is one error line at start; the server binds to loopback unless told."""

import pytest

from radiodiff.cli import main

from .conftest import require_module


@pytest.fixture
def launches(monkeypatch):
    """What ``gr.Blocks.launch`` is asked, instead of serving."""
    gradio = require_module("gradio")
    calls = []
    monkeypatch.setattr(gradio.Blocks, "launch", lambda demo, **kwargs: calls.append(kwargs))
    return calls


def test_a_folder_that_is_not_a_pipeline_is_one_error_line_before_anything_is_served(tmp_path, capsys, launches):
    assert main(["demo", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.splitlines() == [
        f"radiodiff demo: error: {tmp_path}: no model_index.json; expected a saved pipeline folder with "
        "model_index.json and its components' safetensors weights"]
    assert launches == []


def test_the_server_binds_to_loopback_unless_told_otherwise(runs, launches):
    folder = str(runs["ldm"][0])
    assert main(["demo", folder]) == 0
    assert main(["demo", folder, str(runs["unet"][0]), "--host", "0.0.0.0", "--port", "9000"]) == 0
    assert [(call["server_name"], call["server_port"]) for call in launches] == [("127.0.0.1", 7860),
                                                                                ("0.0.0.0", 9000)]
