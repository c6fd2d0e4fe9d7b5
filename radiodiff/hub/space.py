"""A Hugging Face Space for a pushed pipeline: ``radiodiff demo``'s app (:mod:`radiodiff.demo`), loading the pipeline
from its model repository. Three files: ``app.py``, ``requirements.txt`` and ``README.md``, whose front matter
(``sdk: gradio``) is what Spaces read."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData

from .. import __version__
from ..file_names import CARD_FILE
from ..file_writing import write_atomically
from .cards import LICENSE, HubError, is_pipeline_run

SPACE_APP_FILE = "app.py"
SPACE_REQUIREMENTS_FILE = "requirements.txt"
SPACE_TAGS = ["radio-map", "radiodiff", "pathloss"]
DEFAULT_SPACE_PACKAGE = f"radiodiff[demo]=={__version__}"

APP_TEMPLATE = '''"""radiodiff's demo of the pipeline {repo_id}, downloaded from its model repository."""

from huggingface_hub import snapshot_download

from radiodiff.demo import demo_from_folders

pipeline_dir = snapshot_download("{repo_id}")
# Spaces set GRADIO_SERVER_NAME and GRADIO_SERVER_PORT; launch() reads them
demo_from_folders([pipeline_dir], labels=["{repo_id}"]).launch(show_error=True)
'''


def gradio_version() -> str:
    """The installed Gradio's version: the Space runs the Gradio the demo was tried with."""
    try:
        return metadata.version("gradio")
    except metadata.PackageNotFoundError:
        raise HubError('a Space runs the demo on the Gradio installed here, and none is: pip install -e ".[demo]"') \
            from None


def space_files(output_dir: str | Path, repo_id: str, package: str | None = None) -> dict[str, str]:
    """The Space's files by name, for the pipeline run ``output_dir`` pushed to the model repository ``repo_id``.

    Args:
        output_dir: a second-stage or RadioUNet run (with ``pipeline/``).
        repo_id: the model repository the app downloads the pipeline from.
        package: the requirement that installs radiodiff with its demo extra on the Space, e.g.
            ``"radiodiff[demo] @ git+https://github.com/USER/REPO"`` for a package not on PyPI; default
            :data:`DEFAULT_SPACE_PACKAGE`, radiodiff at this version.
    """
    if not is_pipeline_run(output_dir):
        raise HubError(f"{output_dir}: a Space shows a pipeline; expected a run folder with pipeline/ (a second-stage "
                       "or RadioUNet run)")
    data = SpaceCardData(title=f"RadioDiff demo: {repo_id.split('/')[-1]}", sdk="gradio", sdk_version=gradio_version(),
                         app_file=SPACE_APP_FILE, license=LICENSE, models=[repo_id], tags=SPACE_TAGS)
    body = (f"# RadioDiff demo of [{repo_id}](https://huggingface.co/{repo_id})\n\n"
            "Pick or draw a city, click to place the transmitter, and see the radio map the pipeline generates beside "
            "the physics baseline. The app is `radiodiff demo` (`pip install \"radiodiff[demo]\"`).\n")
    return {
        SPACE_APP_FILE: APP_TEMPLATE.format(repo_id=repo_id),
        SPACE_REQUIREMENTS_FILE: f"{package or DEFAULT_SPACE_PACKAGE}\n",
        CARD_FILE: str(SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}")),
    }


def write_space(output_dir: str | Path, space_dir: str | Path, repo_id: str, package: str | None = None) -> Path:
    """Write :func:`space_files` into ``space_dir`` (each atomically); returns ``space_dir``."""
    space_dir = Path(space_dir)
    for name, content in space_files(output_dir, repo_id, package).items():
        write_atomically(space_dir / name, content)
    return space_dir
