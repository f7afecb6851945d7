from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.runtime_process import RuntimeProcess, running


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[RuntimeProcess]:
    """A real runtime on a fresh root; errors are forgotten after 60 s."""
    with running(tmp_path / "root", "--error-window", "60") as process:
        yield process


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    path = tmp_path / "recipes"
    path.mkdir()
    return path


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    path = tmp_path / "artifacts"
    path.mkdir()
    return path
