from __future__ import annotations

from collections.abc import Iterator

import pytest

import brace
from brace.testing import FakeClock


@pytest.fixture(autouse=True, scope="session")
def dead_letters_in_memory() -> Iterator[None]:
    """Recoveries given no store put their dead letters in memory, not in a file here."""
    with brace.testing.dead_letters_in_memory():
        yield


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """brace's clock, frozen for the test."""
    with brace.testing.fake_clock() as frozen:
        yield frozen
