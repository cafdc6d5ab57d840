"""The C core's own tests (tests/c), built with CMake and run by ctest.

Built plain and with AddressSanitizer + UndefinedBehaviorSanitizer (with
float-cast-overflow, which GCC leaves out of "undefined") here;
.ci/run also builds and runs them under ThreadSanitizer.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("sanitizer", ["", "address,undefined,float-cast-overflow"], ids=["plain", "asan-ubsan"])
def test_c_core(tmp_path: Path, sanitizer: str) -> None:
    cmake = shutil.which("cmake")
    assert cmake, "cmake is installed by the test extra"
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(cmake, "-S", str(ROOT), "-B", str(build), *generator, f"-DBRACE_SANITIZE={sanitizer}")
    run(cmake, "--build", str(build))
    run(shutil.which("ctest") or "ctest", "--test-dir", str(build), "--output-on-failure")
