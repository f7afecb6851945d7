"""Kernel start-up: a step that fails closes what the steps before it started."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.pki import CertificateAuthority
from tests.support.ports import free_port

from edgewise.runtime import kernel as kernel_module
from edgewise.runtime.cloudlink import (
    CloudLink,
    CloudLinkClosedError,
    CloudLinkSettings,
    FleetSettings,
    ReconnectSettings,
)
from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.ipc.server import IpcServer
from edgewise.runtime.ipc.services import SERVICE_FACTORIES
from edgewise.runtime.kernel import Kernel
from edgewise.runtime.lifecycle import ComponentSpec
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import RuntimeSettings


class StartupError(Exception):
    """What the failing step raises."""


class RecordingService:
    """A service that starts and records that it was closed."""

    closed: list[str] = []

    def __init__(self, context: RuntimeContext) -> None:
        self._context = context

    def register(self, server: IpcServer) -> None:
        """No operations."""

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        RecordingService.closed.append("recording")


class FailingService(RecordingService):
    """A service whose start fails; it must not be closed, since it never started."""

    async def start(self) -> None:
        raise StartupError("the service cannot start")

    async def close(self) -> None:
        RecordingService.closed.append("failing")


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A root whose socket path fits the 107-byte limit, whatever pytest's tmp_path is."""
    directory = Path(tempfile.mkdtemp(prefix="ew-kernel-"))
    yield directory / "root"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def kernel(short_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kernel:
    """A kernel with a cloud link (to a port where nothing listens) and a recording service."""
    monkeypatch.setattr(RecordingService, "closed", [])
    device = CertificateAuthority(tmp_path / "pki").issue("edge-1")
    cloud = CloudLinkSettings(
        endpoint="127.0.0.1",
        port=free_port(),
        certificate=device.certificate,
        private_key=device.private_key,
        root_ca=device.ca,
        reconnect=ReconnectSettings(min_delay=0.1, max_delay=0.5),
        fleet=FleetSettings(enabled=False),
    )
    return Kernel(RuntimeSettings(root=short_root, thing_name="edge-1", cloud=cloud))


def _lock_is_free(paths: RootPaths) -> bool:
    fd = os.open(paths.lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


async def _is_closed(link: CloudLink | None) -> bool:
    assert link is not None
    try:
        await link.publish("edge-1/probe", b"{}", qos=1)
    except CloudLinkClosedError:
        return True
    return False


async def test_a_service_that_fails_to_start_closes_what_started_before_it(
    kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        kernel_module, "SERVICE_FACTORIES", (*SERVICE_FACTORIES, RecordingService, FailingService)
    )

    with pytest.raises(StartupError):
        await kernel.start()

    assert RecordingService.closed == ["recording"]
    assert await _is_closed(kernel.cloud)
    assert not kernel.paths.ipc_socket.exists()
    assert _lock_is_free(kernel.paths)


async def test_a_step_that_fails_after_the_ipc_server_started_closes_everything_started(
    kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_module, "SERVICE_FACTORIES", (*SERVICE_FACTORIES, RecordingService))
    listening: list[bool] = []

    def fail(paths: RootPaths) -> None:
        listening.append(paths.ipc_socket.exists())
        raise StartupError("the CLI script cannot be written")

    monkeypatch.setattr(kernel_module, "write_greengrass_cli", fail)

    with pytest.raises(StartupError):
        await kernel.start()

    assert listening == [True]
    assert not kernel.paths.ipc_socket.exists()
    assert not kernel.paths.pid_file.exists()
    assert RecordingService.closed == ["recording"]
    assert await _is_closed(kernel.cloud)
    assert _lock_is_free(kernel.paths)


async def test_a_kernel_started_again_on_a_root_left_by_a_failed_start_runs(
    kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(kernel_module, "SERVICE_FACTORIES", (*SERVICE_FACTORIES, FailingService))
        with pytest.raises(StartupError):
            await kernel.start()

    again = Kernel(kernel.settings)
    await again.start()
    try:
        assert again.paths.ipc_socket.exists()
        assert again.paths.pid_file.read_text() == f"{os.getpid()}\n"
        environment = again.component_environment(ComponentSpec("a", "1.0.0"))
        assert environment["EDGEWISE_PYTHON"] == sys.executable
        assert environment["AWS_IOT_THING_NAME"] == "edge-1"
    finally:
        await again.stop()
    assert not again.paths.ipc_socket.exists()
    assert _lock_is_free(again.paths)
