from __future__ import annotations

from collections.abc import Iterator

import pytest

import brace
from brace.testing import FakeClock


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """brace's clock, frozen for the test."""
    with brace.testing.fake_clock() as frozen:
        yield frozen
