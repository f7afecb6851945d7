"""The runtime's MQTT 5 connection to the cloud (AWS IoT Core or the Edgewise cloud), with an offline spool.

Its settings come from the runtime configuration file (:mod:`edgewise.runtime.config_file`).

Usage::

    settings = load_config_file(Path("edgewise.yaml")).cloud
    async with CloudLink(settings, client_id="my-device", spool_dir=root / "spool") as link:
        await link.publish("telemetry/my-device", b"{}", qos=1)
        subscription = await link.subscribe("commands/#", on_message, qos=1)
"""

from typing import TYPE_CHECKING, Any

from edgewise.runtime.cloudlink._message import CloudMessage, ConnectionMessages, MessageProperties
from edgewise.runtime.cloudlink._settings import (
    CloudLinkSettings,
    FleetSettings,
    ReconnectSettings,
    SpoolSettings,
)
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

#: Names from ``_link``, which imports paho-mqtt: loaded on first use, so a runtime without a cloud section
#: never imports the MQTT client (and its HTTP and e-mail dependencies).
_LAZY = {
    "CloudLink",
    "CloudLinkStatistics",
    "CloudSubscription",
    "ConnectionMessagesFactory",
    "MessageCallback",
    "StatusListener",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from edgewise.runtime.cloudlink import _link

        return getattr(_link, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


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
