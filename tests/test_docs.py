"""The repository's documents stand alone: nothing cites a design document it does not contain."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS_FILE = Path(__file__).resolve()
# Generated or installed trees (see .gitignore), not the repository's own files.
NOT_OURS = {".git", "build", "dist", "__pycache__", ".hypothesis", ".mypy_cache", ".pytest_cache", ".asv"}
# Spelled in two parts so that this file does not mention it either.
DESIGN_DOC = re.compile(rb"design" + rb"\.md", re.IGNORECASE)
CITED_DOC = re.compile(rb"\bdocs/[\w./-]+\.md")


def repository_files(directory: Path = ROOT) -> Iterator[Path]:
    for path in sorted(directory.iterdir()):
        if path.name in NOT_OURS or path.name.endswith(".egg-info"):
            continue
        if path.is_file():
            yield path
        elif path.is_dir() and not (path / "pyvenv.cfg").exists():  # a virtualenv
            yield from repository_files(path)


def test_no_file_mentions_a_design_document_the_repository_lacks() -> None:
    files = list(repository_files())
    assert ROOT / "docs" / "architecture.md" in files and THIS_FILE in files
    assert [str(path.relative_to(ROOT)) for path in files if DESIGN_DOC.search(path.read_bytes())] == []


def test_every_cited_document_exists() -> None:
    cited = {match.decode() for path in repository_files() if path != THIS_FILE
             for match in CITED_DOC.findall(path.read_bytes())}  # fmt: skip
    assert "docs/architecture.md" in cited  # README.md and the code send readers there
    assert [name for name in sorted(cited) if not (ROOT / name).is_file()] == []
