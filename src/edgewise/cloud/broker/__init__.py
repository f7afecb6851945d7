"""The cloud's MQTT gateway: a managed Mosquitto 2 with mutual TLS and per-device authorization."""

from __future__ import annotations

from edgewise.cloud.broker.acl import DevicePermissions, intersect_filters, render_acl, write_acl
from edgewise.cloud.broker.config import (
    BrokerSettings,
    DeviceListenerSettings,
    WorkerListenerSettings,
    hash_password,
    render_config,
    write_config,
)
from edgewise.cloud.broker.connection import BrokerConnection, BrokerEndpoint
from edgewise.cloud.broker.errors import (
    BrokerConfigError,
    BrokerControlError,
    BrokerError,
    BrokerNotRunningError,
    BrokerReloadError,
    BrokerStartError,
)
from edgewise.cloud.broker.process import (
    BrokerState,
    BrokerStatistics,
    MosquittoBroker,
    RestartPolicy,
)

__all__ = [
    "BrokerConfigError",
    "BrokerConnection",
    "BrokerControlError",
    "BrokerEndpoint",
    "BrokerError",
    "BrokerNotRunningError",
    "BrokerReloadError",
    "BrokerSettings",
    "BrokerStartError",
    "BrokerState",
    "BrokerStatistics",
    "DeviceListenerSettings",
    "DevicePermissions",
    "MosquittoBroker",
    "RestartPolicy",
    "WorkerListenerSettings",
    "hash_password",
    "intersect_filters",
    "render_acl",
    "render_config",
    "write_acl",
    "write_config",
]
