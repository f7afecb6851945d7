"""The IPC services of the runtime, one module each; the kernel creates every one listed here."""

from __future__ import annotations

from edgewise.runtime.context import ServiceFactory
from edgewise.runtime.ipc.services.cli import CliService

SERVICE_FACTORIES: tuple[ServiceFactory, ...] = (CliService,)

__all__ = ["SERVICE_FACTORIES"]
