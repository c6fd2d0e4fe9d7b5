"""The README's shape, and every relative link and image in README.md and docs/ resolves (anchors included)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
FIRST_COMMANDS = [
    "```bash",
    "pip install --no-compile -e . && python train_vae.py --config configs/quickstart.yaml",
    'pip install -e ".[test]" && python -m pytest',
    "```",
]
MAX_README_LINES = 300

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); the target ends at whitespace (a title may follow) or the closing parenthesis
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").rglob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = _INLINE_CODE.sub(lambda match: match[2], heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, duplicates numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match[2])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """``(line number, target)`` of every link and image outside code."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
            found.append((number, match[1]))
    return found


def broken_links(path: Path) -> list[str]:
    """What does not resolve among ``path``'s relative links: a missing file or a missing heading anchor."""
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(REPO)}:{number}: {target}"
        if not resolved.exists():
            problems.append(f"{where}: {resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else resolved} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: no heading with the anchor #{anchor} in {resolved.name}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_readme_starts_with_the_two_commands_and_says_what_they_do():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    body = [line for line in lines[1:] if line.strip()]
    assert body[: len(FIRST_COMMANDS)] == FIRST_COMMANDS
    paragraph = body[len(FIRST_COMMANDS)]
    assert not paragraph.startswith(("#", "```", "|", "!")), "a paragraph must follow the commands"


def test_readme_is_at_most_300_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= MAX_README_LINES


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A topic\n\n## Second, part `two`\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n\n[fine](docs/a.md) [fine too](docs/a.md#second-part-two) [self](#title) ![img](https://x.org/i.png)\n"
        "[gone](docs/missing.md) [bad anchor](docs/a.md#third) `[in code](nowhere.md)`\n\n"
        "```\n[in a fence](nowhere.md)\n```\n"
    )
    problems = broken_links(page)
    assert len(problems) == 2
    assert "docs/missing.md" in problems[0] and "#third" in problems[1]


def test_github_slugs():
    assert github_slug("What a run writes, and resuming") == "what-a-run-writes-and-resuming"
    assert github_slug("The first stage's quickstart: the recipe search") == "the-first-stages-quickstart-the-recipe-search"
    assert github_slug("Multi-GPU and multi-node") == "multi-gpu-and-multi-node"
    assert github_slug("What lands in `output_dir`") == "what-lands-in-output_dir"
