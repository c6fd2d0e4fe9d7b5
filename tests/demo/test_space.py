"""A pipeline run's demo as a Hugging Face Space: ``radiodiff card --space`` writes the folder, ``radiodiff push
--space-id`` uploads it beside the model (the Hub mocked: nothing leaves the machine), and its ``app.py`` serves the
pipeline it downloads from the model repository."""

import runpy
import shutil

import huggingface_hub
import pytest
import yaml

from radiodiff import __version__
from radiodiff.cli import main
from radiodiff.hub import HubError, push_to_hub, write_space

from .conftest import require_module

REPO_ID = "someone/radio-ldm"


@pytest.fixture
def run(runs, tmp_path):
    """A copy of the tiny RadioDiff run (pipeline/ and config.yaml), which card and push write into."""
    return shutil.copytree(runs["ldm"][0].parent, tmp_path / "run")


def front_matter(readme: str) -> dict:
    _, matter, _ = readme.split("---\n", 2)
    return yaml.safe_load(matter)


def test_card_writes_a_gradio_space_that_loads_the_pipeline_from_the_model_repository(run, tmp_path):
    gradio = require_module("gradio")
    assert main(["card", str(run), "--repo-id", REPO_ID, "--space", str(tmp_path / "space")]) == 0
    space = tmp_path / "space"
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    matter = front_matter((space / "README.md").read_text())
    assert (matter["sdk"], matter["sdk_version"], matter["app_file"]) == ("gradio", gradio.__version__, "app.py")
    assert (matter["models"], matter["license"]) == ([REPO_ID], "mit")
    assert (space / "requirements.txt").read_text() == f"radiodiff[demo]=={__version__}\n"
    assert f'snapshot_download("{REPO_ID}")' in (space / "app.py").read_text()
    assert (run / "README.md").is_file()  # the model card, as without --space


def test_the_spaces_app_serves_the_downloaded_pipeline_under_the_repositorys_name(run, tmp_path, monkeypatch):
    gradio = require_module("gradio")
    write_space(run, tmp_path / "space", REPO_ID)
    downloads, launched = [], []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id: downloads.append(repo_id) or str(run / "pipeline"))
    monkeypatch.setattr(gradio.Blocks, "launch", lambda demo, **kwargs: launched.append(demo))
    runpy.run_path(str(tmp_path / "space" / "app.py"), run_name="__main__")
    assert downloads == [REPO_ID] and len(launched) == 1
    (selector,) = [block for block in launched[0].blocks.values() if isinstance(block, gradio.CheckboxGroup)]
    assert selector.choices == [(REPO_ID, REPO_ID)]


def test_a_space_package_of_ones_own_goes_into_the_requirements(run, tmp_path):
    require_module("gradio")
    requirement = "radiodiff[demo] @ git+https://github.com/someone/radiodiff"
    write_space(run, tmp_path / "space", REPO_ID, requirement)
    assert (tmp_path / "space" / "requirements.txt").read_text() == requirement + "\n"


def test_a_space_without_the_model_repository_is_one_error_line(run, tmp_path, capsys):
    assert main(["card", str(run), "--space", str(tmp_path / "space")]) == 2
    assert capsys.readouterr().err.strip() == ("radiodiff card: error: --space: the Space loads the pipeline from its "
                                               "model repository; give --repo-id")
    assert not (tmp_path / "space").exists()


def test_a_vae_run_has_no_space(tmp_path):
    with pytest.raises(HubError, match="a Space shows a pipeline"):
        write_space(tmp_path, tmp_path / "space", REPO_ID)


def test_push_with_a_space_id_uploads_the_space_after_the_model(run, hub):
    require_module("gradio")
    push_to_hub(run, REPO_ID, token="hf_test_token", space_id="someone/radio-demo")
    assert [(call["repo_id"], call.get("repo_type"), call.get("space_sdk")) for call in hub.created] == [
        (REPO_ID, "model", None), ("someone/radio-demo", "space", "gradio")]
    model_commit, space_commit = hub.commits
    assert model_commit["repo_id"] == REPO_ID
    assert (space_commit["repo_id"], space_commit["repo_type"]) == ("someone/radio-demo", "space")
    space = {operation.path_in_repo: operation.path_or_fileobj for operation in space_commit["operations"]}
    assert sorted(space) == ["README.md", "app.py", "requirements.txt"]
    assert front_matter(space["README.md"].decode())["models"] == [REPO_ID]


def test_a_bad_space_id_is_refused_before_anything_is_pushed(run, hub):
    with pytest.raises(HubError, match="space id 'radio-demo': expected USER/NAME"):
        push_to_hub(run, REPO_ID, token="hf_test_token", space_id="radio-demo")
    assert hub.created == [] and hub.commits == []
