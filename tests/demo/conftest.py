"""What the demo's tests share: saved tiny pipelines of 32x32 maps in run folders whose config.yaml names 14
synthetic cities (2 maps in the test split), and the demo's optional dependencies, which skip a test where they are
missing (``pip install -e ".[demo-test]"``, Chromium from the system) except in CI (``RADIODIFF_REQUIRE_DEMO_TESTS``),
where they fail it."""

import importlib
import os
import shutil
import socket

import pytest
from tests.helpers.map_fixtures import tiny_pipeline, tiny_pixel_pipeline, tiny_radiounet_pipeline

SIZE = 32
RUN_CONFIG = "data:\n  synthetic:\n    maps: 14\n    tx_per_map: 2\n    size: 32\n    cache_dir: {cache}\n"


def require(what: str, found) -> None:
    if not found:
        message = f"the demo's tests need {what}"
        if os.environ.get("RADIODIFF_REQUIRE_DEMO_TESTS"):
            pytest.fail(message)
        pytest.skip(message)


def require_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        require(f'{name} (pip install -e ".[demo-test]")', False)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require("Chromium (apt-get install chromium)", path)
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Two second-stage-like runs of one data config: ``ldm/pipeline`` (a RadioDiffPipeline sampling with 2 steps
    by default), ``unet/pipeline`` (a RadioUNetPipeline) and ``pixel/pipeline`` (a RadioDiffPipeline without a VAE).
    Returns their pipeline folders and pipelines."""
    root = tmp_path_factory.mktemp("demo-runs")
    pipe = tiny_pipeline("radiodiff", size=SIZE)
    pipe.register_to_config(default_num_inference_steps=2)
    folders = {}
    runs = (("ldm", pipe), ("unet", tiny_radiounet_pipeline(size=SIZE)), ("pixel", tiny_pixel_pipeline(size=SIZE)))
    for name, pipeline in runs:
        pipeline.save_pretrained(root / name / "pipeline")
        (root / name / "config.yaml").write_text(RUN_CONFIG.format(cache=root / "synthetic"))
        folders[name] = (root / name / "pipeline", pipeline)
    return folders


@pytest.fixture(scope="session")
def served(runs):
    """The app of both runs' pipelines served on a free loopback port, as ``radiodiff demo`` serves it."""
    require_module("gradio")
    from radiodiff.demo import demo_from_folders

    demo = demo_from_folders([runs["ldm"][0], runs["unet"][0]])
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                show_error=True)
    yield demo
    demo.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
