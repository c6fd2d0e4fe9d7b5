"""The Hub, mocked: what a push asks of ``HfApi`` is recorded, and no token is found. Nothing reaches the network."""

import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants


class RecordingHub:
    """Stands in for the Hub: records what ``HfApi.create_repo`` and ``HfApi.create_commit`` are asked."""

    def __init__(self):
        self.created: list[dict] = []
        self.commits: list[dict] = []

    def create_repo(self, api, repo_id, **kwargs):
        self.created.append({"repo_id": repo_id, "token": api.token, **kwargs})
        return f"https://huggingface.co/{repo_id}"

    def create_commit(self, api, **kwargs):
        self.commits.append(kwargs)

    def uploaded(self) -> dict[str, bytes]:
        """The content of each file the commit sends, by its path in the repository."""
        (commit,) = self.commits
        files = {}
        for operation in commit["operations"]:
            content = operation.path_or_fileobj
            files[operation.path_in_repo] = content if isinstance(content, bytes) else Path(content).read_bytes()
        return files

    def uploaded_files(self) -> set[str]:
        return set(self.uploaded())


@pytest.fixture
def hub(monkeypatch) -> RecordingHub:
    recorder = RecordingHub()
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: recorder.create_repo(api, repo_id, **kw))
    monkeypatch.setattr(HfApi, "create_commit", lambda api, **kw: recorder.create_commit(api, **kw))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return recorder


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


def folder_state(folder: Path) -> dict[str, float]:
    return {str(path): os.stat(path).st_mtime_ns for path in folder.rglob("*")}
