"""The runtime's MQTT 5 connection to the cloud (AWS IoT Core or the Edgewise cloud), with an offline spool.

Its settings come from the runtime configuration file (:mod:`edgewise.runtime.config_file`).

Usage::

    settings = load_config_file(Path("edgewise.yaml")).cloud
    async with CloudLink(settings, client_id="my-device", spool_dir=root / "spool") as link:
        await link.publish("telemetry/my-device", b"{}", qos=1)
        subscription = await link.subscribe("commands/#", on_message, qos=1)
"""

import importlib
from typing import TYPE_CHECKING, Any

from edgewise.runtime.cloudlink.errors import (
    CloudLinkClosedError,
    CloudLinkError,
    ConfigFileError,
    MessageTooLargeError,
    NotConnectedError,
    SubscriptionError,
)

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink._link import (
        CloudLink,
        CloudLinkStatistics,
        CloudSubscription,
        ConnectionMessagesFactory,
        MessageCallback,
        StatusListener,
    )
    from edgewise.runtime.cloudlink._message import CloudMessage, ConnectionMessages, MessageProperties
    from edgewise.runtime.cloudlink._settings import (
        CloudLinkSettings,
        FleetSettings,
        ReconnectSettings,
        SpoolSettings,
    )

#: Names loaded on first use, with the module that defines them, so that a runtime without a cloud section
#: imports only the errors: ``_link`` imports paho-mqtt (and its HTTP and e-mail dependencies), ``_settings``
#: the ``ssl`` module and the configuration file's parser, ``_message`` three dataclasses.
_LAZY = {
    "CloudLink": "_link",
    "CloudLinkStatistics": "_link",
    "CloudSubscription": "_link",
    "ConnectionMessagesFactory": "_link",
    "MessageCallback": "_link",
    "StatusListener": "_link",
    "CloudLinkSettings": "_settings",
    "FleetSettings": "_settings",
    "ReconnectSettings": "_settings",
    "SpoolSettings": "_settings",
    "CloudMessage": "_message",
    "ConnectionMessages": "_message",
    "MessageProperties": "_message",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "CloudLink",
    "CloudLinkClosedError",
    "CloudLinkError",
    "CloudLinkSettings",
    "CloudLinkStatistics",
    "CloudMessage",
    "CloudSubscription",
    "ConfigFileError",
    "ConnectionMessages",
    "ConnectionMessagesFactory",
    "FleetSettings",
    "MessageCallback",
    "MessageProperties",
    "MessageTooLargeError",
    "NotConnectedError",
    "ReconnectSettings",
    "SpoolSettings",
    "StatusListener",
    "SubscriptionError",
]
