"""The C core's own tests (tests/c), built with CMake and run by ctest.

Built plain and with AddressSanitizer + UndefinedBehaviorSanitizer (with
float-cast-overflow, which GCC leaves out of "undefined") here;
.ci/run also builds and runs them under ThreadSanitizer.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import brace
from brace import _config, _core

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("sanitizer", ["", "address,undefined,float-cast-overflow"], ids=["plain", "asan-ubsan"])
@pytest.mark.slow
def test_c_core(tmp_path: Path, sanitizer: str) -> None:
    cmake = shutil.which("cmake")
    assert cmake, "cmake is installed by the test extra"
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(cmake, "-S", str(ROOT), "-B", str(build), *generator, f"-DBRACE_SANITIZE={sanitizer}")
    run(cmake, "--build", str(build))
    run(shutil.which("ctest") or "ctest", "--test-dir", str(build), "--output-on-failure")


def _header_defines() -> dict[str, int]:
    """brace.h's numeric #defines, evaluated (UINT64_C(x) is x)."""
    text = (ROOT / "csrc" / "brace.h").read_text()
    defines: dict[str, int] = {}
    for name, expression in re.findall(r"^#define (BRC_\w+) +([^/\n]+?)\s*(?:/\*.*)?$", text, re.MULTILINE):
        expression = re.sub(r"UINT64_C\(([^)]*)\)", r"(\1)", expression)
        if re.fullmatch(r"[0-9a-fx()<< ]+", expression):
            defines[name] = eval(expression)  # digits, parentheses and shifts only
    return defines


LIMITS = {
    "DURATION_MAX_NS": "BRC_DURATION_MAX",
    "WINDOW_COUNT_MAX": "BRC_WINDOW_COUNT_MAX",
    "WINDOW_TIME_MAX": "BRC_WINDOW_TIME_MAX",
    "WINDOW_CALLS_MAX": "BRC_WINDOW_CALLS_MAX",
    "HALF_OPEN_CALLS_MAX": "BRC_HALF_OPEN_CALLS_MAX",
    "BULKHEAD_MAX": "BRC_BULKHEAD_MAX",
    "BUDGET_BUCKETS": "BRC_BUDGET_BUCKETS",
    "BUDGET_TOKEN": "BRC_BUDGET_TOKEN",
    "BUDGET_RATIO_MAX": "BRC_BUDGET_RATIO_MAX",
    "BUDGET_MIN_PER_SECOND_MAX": "BRC_BUDGET_MIN_PER_SECOND_MAX",
    "BUDGET_TTL_MIN": "BRC_BUDGET_TTL_MIN",
    "BUDGET_TTL_MAX": "BRC_BUDGET_TTL_MAX",
    "KEYED_CAPACITY_MIN": "BRC_KEYED_CAPACITY_MIN",
    "KEYED_CAPACITY_MAX": "BRC_KEYED_CAPACITY_MAX",
    "KEYED_PROBE": "BRC_KEYED_PROBE",
    "KEYED_STALE_NS": "BRC_KEYED_STALE_NS",
}


@pytest.mark.parametrize("constant", sorted(LIMITS))
def test_every_limit_comes_from_the_header(constant: str) -> None:
    assert getattr(_core, constant) == _header_defines()[LIMITS[constant]]


def test_the_python_layer_checks_the_headers_limits() -> None:
    assert _config.MAX_DEPTH_NS == _core.DURATION_MAX_NS
    limits = {
        "half_open_calls": _core.HALF_OPEN_CALLS_MAX,
        "window_size": _core.WINDOW_COUNT_MAX,
        "minimum_calls": _core.WINDOW_CALLS_MAX,
    }
    for name, most in limits.items():
        config = {name: most, "consecutive_failures": 1} if name == "minimum_calls" else {name: most}
        brace.CircuitBreaker(**config)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=name):
            brace.CircuitBreaker(**{**config, name: most + 1})  # type: ignore[arg-type]
    brace.Bulkhead(max_concurrent=_core.BULKHEAD_MAX)
    with pytest.raises(ValueError, match="max_concurrent"):
        brace.Bulkhead(max_concurrent=_core.BULKHEAD_MAX + 1)
