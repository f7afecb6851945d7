"""What the runtime's services share: one typed object the kernel builds and hands to each service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edgewise.runtime.pubsub import PubSubBus

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink
    from edgewise.runtime.config import ConfigStore
    from edgewise.runtime.deployment import (
        ComponentUpdateDeferral,
        ConfigurationValidation,
        DeploymentService,
    )
    from edgewise.runtime.ipc.auth import TokenTable
    from edgewise.runtime.ipc.authorization import Authorizer
    from edgewise.runtime.ipc.server import IpcServer
    from edgewise.runtime.lifecycle import LifecycleSupervisor
    from edgewise.runtime.paths import RootPaths
    from edgewise.runtime.secrets import SecretVault
    from edgewise.runtime.settings import RuntimeSettings


@dataclass(frozen=True)
class RuntimeContext:
    """The kernel's parts, for the services that need them."""

    settings: RuntimeSettings
    paths: RootPaths
    store: ConfigStore
    supervisor: LifecycleSupervisor
    deployments: DeploymentService
    tokens: TokenTable
    authorizer: Authorizer
    platform: dict[str, str]
    #: The deployment pipeline's notify-and-defer stage; the lifecycle IPC service feeds it answers.
    deferral: ComponentUpdateDeferral
    #: The deployment pipeline's validate stage; the configuration IPC service feeds it reports.
    validation: ConfigurationValidation
    #: The deployed secrets, read back for GetSecretValue.
    secrets: SecretVault
    #: The local pub/sub bus; IPC PublishToTopic/SubscribeToTopic and runtime services (shadows) use it.
    bus: PubSubBus = field(default_factory=PubSubBus)
    #: The cloud link when a cloud endpoint is configured. Imported for type checking only: importing it at
    #: run time would load paho-mqtt, which a runtime without a cloud section never does.
    cloud: CloudLink | None = None

    def configuration_of(self, component: str) -> Any:
        """A component's current configuration (a deep copy), or None."""
        return self.store.get(("services", component, "configuration"))


class RuntimeService(Protocol):
    """A part of the runtime that serves IPC operations and may run background work."""

    def register(self, server: IpcServer) -> None:
        """Register this service's IPC operations."""

    async def start(self) -> None:
        """Start background work; called after every service registered, before components start."""

    async def close(self) -> None:
        """Stop background work; called after components stopped."""


ServiceFactory = Callable[[RuntimeContext], RuntimeService]
