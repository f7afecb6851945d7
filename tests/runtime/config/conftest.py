"""Fixtures for the configuration store tests: a store opened in a fresh directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewise.runtime.config import ConfigStore


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """The directory the ``store`` fixture keeps its files in."""
    return tmp_path / "config"


@pytest.fixture
def store(store_dir: Path) -> Iterator[ConfigStore]:
    """An empty store, closed after the test."""
    with ConfigStore.open(store_dir) as opened:
        yield opened
