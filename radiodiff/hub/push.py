"""Uploading a training run of either stage to the Hugging Face Hub: a first-stage run's ``vae/`` (and, on
request, ``discriminator/``), or a second-stage run's pipeline at the repository's root, with the card, samples
and metrics, in one commit."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from ..file_names import CARD_FILE, CONFIG_FILE, METRICS_FILE, PIPELINE_INDEX_FILE, TRAINING_SUMMARY_FILE
from ..file_writing import write_atomically
from .cards import (
    PIPELINE_DIR,
    HubError,
    is_pipeline_run,
    is_radiounet_run,
    read_pipeline_run,
    read_radiounet_run,
    read_vae_training_run,
    render_pipeline_model_card,
    render_vae_model_card,
    shipped_code,
)
from .space import space_files

# what a push uploads besides the card; checkpoints/ (optimizer states), logs/ and config.yaml (local paths) never match
VAE_UPLOAD_PATTERNS = [
    f"vae/{CONFIG_FILE}",
    "vae/*.safetensors",
    "samples/*.png",
    METRICS_FILE,
    TRAINING_SUMMARY_FILE,
]
DISCRIMINATOR_PATTERNS = [f"discriminator/{CONFIG_FILE}", "discriminator/*.safetensors"]

# beside the pipeline's own files, which go to the root of the repository so that from_pretrained(repo_id) loads it
PIPELINE_RUN_PATTERNS = ["samples/*.png", METRICS_FILE, TRAINING_SUMMARY_FILE]
PIPELINE_FILE_PATTERNS = [PIPELINE_INDEX_FILE, f"*/{CONFIG_FILE}", "*/scheduler_config.json", "*/*.safetensors"]


def _unreachable_errors() -> tuple[type[Exception], ...]:
    """What a request raises when the Hub cannot be reached: a socket error, or a transport error of the HTTP
    library huggingface_hub uses (httpx up to huggingface_hub 1.x, httpx2 from 2.0)."""
    errors: list[type[Exception]] = [OSError]
    for library in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(library).TransportError)
        except ImportError:
            continue
    return tuple(errors)


def _without_local_paths(config_file: Path) -> bytes:
    """A component's JSON as uploaded: diffusers records the folder a component was loaded from in
    ``_name_or_path``, a machine-local path that must not leave the machine."""
    config = json.loads(config_file.read_text())
    config.pop("_name_or_path", None)
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def pipeline_upload_operations(output_dir: Path) -> list[CommitOperationAdd]:
    """The pipeline's files at the repository's root (JSON without local paths, the code it ships), then samples
    and metrics."""
    pipeline_dir = output_dir / PIPELINE_DIR
    pipeline_files = sorted(p.relative_to(pipeline_dir).as_posix() for p in pipeline_dir.rglob("*") if p.is_file())
    operations = []
    patterns = PIPELINE_FILE_PATTERNS + shipped_code(pipeline_dir)
    for name in filter_repo_objects(pipeline_files, allow_patterns=patterns):
        content = _without_local_paths(pipeline_dir / name) if name.endswith(".json") else str(pipeline_dir / name)
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    run_files = sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file())
    for name in filter_repo_objects(run_files, allow_patterns=PIPELINE_RUN_PATTERNS):
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(output_dir / name)))
    return operations


def vae_upload_patterns(include_discriminator: bool) -> list[str]:
    """The files of an output folder that a push uploads besides the card (``filter_repo_objects`` patterns)."""
    return VAE_UPLOAD_PATTERNS + (DISCRIMINATOR_PATTERNS if include_discriminator else [])


def vae_files_to_upload(output_dir: Path, include_discriminator: bool) -> list[str]:
    """The run's files a push sends, relative to ``output_dir``, besides the card."""
    files = sorted(path.relative_to(output_dir).as_posix() for path in output_dir.rglob("*") if path.is_file())
    return list(filter_repo_objects(files, allow_patterns=vae_upload_patterns(include_discriminator)))


def _check_can_push(output_dir: Path, repo_id: str, include_discriminator: bool, token: str | None) -> str:
    """The token to push with, once everything a push needs is there; raises ``HubError`` otherwise."""
    if is_pipeline_run(output_dir):
        read_radiounet_run(output_dir) if is_radiounet_run(output_dir) else read_pipeline_run(output_dir)
        if include_discriminator:
            raise HubError(f"{output_dir}: --include-discriminator: a second-stage run has no discriminator")
    else:
        read_vae_training_run(output_dir)
    if include_discriminator and not (output_dir / "discriminator" / CONFIG_FILE).is_file():
        raise HubError(f"{output_dir}: --include-discriminator, but there is no discriminator/{CONFIG_FILE}")
    _check_repo_id(repo_id, "repo id")
    if constants.is_offline_mode():
        raise HubError("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it (and be online) to push")
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN, then push again")
    return token


def _check_repo_id(repo_id: str, what: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubError(f"{what} {repo_id!r}: {error}") from None
    if "/" not in repo_id:
        raise HubError(f"{what} {repo_id!r}: expected USER/NAME (or ORGANIZATION/NAME)")


def _space_operations(output_dir: Path, repo_id: str, space_id: str,
                      package: str | None) -> list[CommitOperationAdd]:
    """The Space's files as commit operations, once its id is valid."""
    _check_repo_id(space_id, "space id")
    return [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content.encode("utf-8"))
            for name, content in space_files(output_dir, repo_id, package).items()]


def push_to_hub(
    output_dir: str | Path,
    repo_id: str,
    private: bool = False,
    include_discriminator: bool = False,
    token: str | None = None,
    space_id: str | None = None,
    space_package: str | None = None,
) -> str:
    """Create ``repo_id`` (if needed) and upload the run: ``vae/``, the card, samples and metrics.

    A second-stage run (``output_dir/pipeline/model_index.json``) uploads its pipeline at the repository's root,
    so that ``RadioDiffPipeline.from_pretrained(repo_id)`` loads it, with component configs stripped of the
    local paths diffusers records in them.

    ``discriminator/`` goes too with ``include_discriminator``; checkpoints, optimizer states, logs and the
    config (which holds local paths) never do. The card, whose examples name ``repo_id``, is uploaded from
    memory in the same commit and written to ``output_dir/README.md`` only once the push succeeded. Raises
    ``HubError`` without a token, in offline mode, or when the Hub cannot be reached or refuses the push;
    the local files are then untouched.

    With ``space_id``, a pipeline run's demo goes to that Space in a second commit
    (:func:`~radiodiff.hub.space.space_files`: ``radiodiff demo``'s app, loading the pipeline from ``repo_id``;
    ``space_package`` is the requirement that installs radiodiff there).

    Returns:
        The URL of the repository.
    """
    output_dir = Path(output_dir)
    token = _check_can_push(output_dir, repo_id, include_discriminator, token)
    space = [] if space_id is None else _space_operations(output_dir, repo_id, space_id, space_package)
    if is_pipeline_run(output_dir):
        card = str(render_pipeline_model_card(output_dir, repo_id))
        files = pipeline_upload_operations(output_dir)
    else:
        card = str(render_vae_model_card(output_dir, repo_id))
        files = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(output_dir / name))
                 for name in vae_files_to_upload(output_dir, include_discriminator)]
    operations = [CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8"))] + files
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(repo_id=repo_id, repo_type="model", operations=operations,
                          commit_message="Upload RadioDiff pipeline" if is_pipeline_run(output_dir)
                          else "Upload RadioDiff VAE")
        if space:
            api.create_repo(space_id, private=private, exist_ok=True, repo_type="space", space_sdk="gradio")
            api.create_commit(repo_id=space_id, repo_type="space", operations=space,
                              commit_message="Upload the RadioDiff demo")
    except HfHubHTTPError as error:
        raise HubError(f"pushing {output_dir} to {repo_id} failed: {error}") from None
    except _unreachable_errors() as error:
        raise HubError(f"pushing {output_dir} to {repo_id} failed: the Hub cannot be reached ({error})") from None
    write_atomically(output_dir / CARD_FILE, card)
    return str(url)
