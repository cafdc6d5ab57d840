"""The MIT licence that pyproject.toml declares is in the repository and in what gets installed."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_repository_holds_the_mit_licence() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 The brace authors\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text


def test_the_installed_distribution_carries_it() -> None:
    distribution = importlib.metadata.distribution("brace")
    assert distribution.metadata["License-Expression"] == "MIT"
    assert distribution.metadata.get_all("License-File") == ["LICENSE"]
    assert distribution.read_text("licenses/LICENSE") == (ROOT / "LICENSE").read_text(encoding="utf-8")
