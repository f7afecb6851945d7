"""The cloud's MQTT gateway: a managed Mosquitto 2 with mutual TLS and per-device authorization."""

from __future__ import annotations

from edgewise.cloud.broker.acl import DevicePermissions, intersect_filters, render_acl, write_acl
from edgewise.cloud.broker.config import (
    DEFAULT_MAX_PACKET_SIZE,
    BrokerSettings,
    DeviceListenerSettings,
    WorkerListenerSettings,
    hash_password,
    render_config,
    render_password_file,
    write_config,
    write_file_atomically,
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
from edgewise.cloud.broker.permissions import (
    all_device_permissions,
    device_permissions,
    to_device_permissions,
)
from edgewise.cloud.broker.process import (
    MOSQUITTO,
    BrokerState,
    BrokerStatistics,
    MosquittoBroker,
    RestartPolicy,
)
from edgewise.cloud.broker.sync import AuthorizationSnapshot, AuthorizationSync, SyncRetryPolicy

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "MOSQUITTO",
    "AuthorizationSnapshot",
    "AuthorizationSync",
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
    "SyncRetryPolicy",
    "WorkerListenerSettings",
    "all_device_permissions",
    "device_permissions",
    "hash_password",
    "intersect_filters",
    "render_acl",
    "render_config",
    "render_password_file",
    "to_device_permissions",
    "write_acl",
    "write_config",
    "write_file_atomically",
]
