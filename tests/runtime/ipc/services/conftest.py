"""Fixtures for the IPC service tests: a real runtime on a short root, and a recipe directory."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edgewise.runtime.kernel import Kernel
from edgewise.runtime.settings import RuntimeSettings


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A root whose socket path fits the 107-byte limit, whatever pytest's tmp_path is."""
    directory = Path(tempfile.mkdtemp(prefix="ew-svc-"))
    yield directory / "root"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def kernel(short_root: Path) -> AsyncIterator[Kernel]:
    # These tests are about the IPC services: a deployment need not watch its components for the default second.
    settings = RuntimeSettings(root=short_root, grace_period=2.0, error_window=60.0, run_stability=0.05)
    kernel = Kernel(settings)
    await kernel.start()
    yield kernel
    await kernel.stop()


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    path = tmp_path / "recipes"
    path.mkdir()
    return path
