"""The command line, as the `brace` script and as `python -m brace`: help, version, commands."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import brace

pytestmark = pytest.mark.slow  # runs the command line in subprocesses

SCRIPT = Path(sysconfig.get_path("scripts")) / "brace"
WAYS = {"script": [str(SCRIPT)], "module": [sys.executable, "-m", "brace"]}


def run(way: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    return subprocess.run([*WAYS[way], *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("way", WAYS)
def test_no_command_prints_the_help(way: str) -> None:
    result = run(way)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: brace ")
    for command in ("demo", "report", "tour", "--version"):
        assert command in result.stdout


@pytest.mark.parametrize("way", WAYS)
def test_version(way: str) -> None:
    result = run(way, "--version")
    assert (result.returncode, result.stdout) == (0, f"brace {brace.__version__}\n")
    assert brace.__version__ == importlib.metadata.version("brace")  # the package agrees with its metadata


def test_unknown_commands_are_rejected() -> None:
    result = run("module", "fly")
    assert result.returncode == 2
    assert "invalid choice: 'fly'" in result.stderr
