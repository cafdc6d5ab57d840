"""Every Python example of the README runs as it is written, each on its own.

Each ```python block runs in a fresh interpreter (so that no block leans on another
one's names or on process-wide state another block left), in an empty working
directory (the examples may write files there, as they would in a user's), on real
time: nothing is faked. A block that fails shows its output.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)
# A guard against a hang, never reached by a passing block: the examples sleep at most a second.
LONG = 120.0


def first_line(block: str) -> str:
    return next((line for line in block.splitlines() if line and not line.startswith(("import", "from"))), "")


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{index}:{first_line(block)[:40]}" for index, block in enumerate(BLOCKS)])
def test_a_readme_example_runs_as_written(block: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=LONG)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
