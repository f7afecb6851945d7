"""The IPC services of the runtime, one module each; the kernel creates every one listed here."""

from __future__ import annotations

from edgewise.runtime.context import ServiceFactory
from edgewise.runtime.ipc.services.cli import CliService
from edgewise.runtime.ipc.services.configuration import ConfigurationService
from edgewise.runtime.ipc.services.lifecycle import LifecycleService
from edgewise.runtime.ipc.services.metrics import MetricsService
from edgewise.runtime.ipc.services.mqttproxy import MqttProxyService
from edgewise.runtime.ipc.services.pubsub import PubSubService
from edgewise.runtime.ipc.services.secrets import SecretManagerService
from edgewise.runtime.ipc.services.shadow import ShadowManagerService
from edgewise.runtime.ipc.services.tokens import TokenService

SERVICE_FACTORIES: tuple[ServiceFactory, ...] = (
    CliService,
    ConfigurationService,
    LifecycleService,
    MetricsService,
    TokenService,
    PubSubService,
    SecretManagerService,
    ShadowManagerService,
    MqttProxyService,
)

__all__ = ["SERVICE_FACTORIES"]
