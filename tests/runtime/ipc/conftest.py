"""Fixtures shared by the IPC tests: a short socket path (Unix socket paths are limited to 107 bytes)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def socket_path() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="ew-ipc-"))
    yield directory / "ipc.socket"
    shutil.rmtree(directory, ignore_errors=True)
