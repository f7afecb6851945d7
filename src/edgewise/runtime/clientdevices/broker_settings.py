"""The configuration of the local broker component in Greengrass's keys, under either of its names.

``aws.greengrass.clientdevices.mqtt.Moquette`` takes ``moquette: {ssl_port: 8883, host: "0.0.0.0",
"netty.mqtt.message_size": 131072, ...}``; the other keys under ``moquette`` tune Moquette itself and are accepted
and ignored (with a warning when applied). ``aws.greengrass.clientdevices.mqtt.EMQX`` takes the TLS listener's
address from ``emqxConfig.listeners.ssl.default.bind`` (``"0.0.0.0:8883"`` or ``"8883"``) or from EMQX 1's
``emqx: {"listener.ssl.external": "8883"}``; the rest of EMQX's configuration is accepted and ignored likewise.
Any other key is refused, naming it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgewise.runtime.clientdevices.config_fields import object_at, object_in, only_keys, whole_number
from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.names import EMQX, MOQUETTE

DEFAULT_PORT: Final = 8883
DEFAULT_HOST: Final = "0.0.0.0"  # noqa: S104 - client devices connect over the network
#: AWS IoT Core's largest message (128 KiB) and Greengrass's default for Moquette.
DEFAULT_MAX_PACKET_SIZE: Final = 131_072
PACKET_SIZE_RANGE: Final = (1024, 268_435_455)
_MOQUETTE_IGNORED_TOP: Final = ("startupTimeoutSeconds",)
_EMQX_IGNORED_TOP: Final = (
    "authorizationMode",
    "crtFileFormat",
    "dockerOptions",
    "ipcTimeoutSeconds",
    "requiresPrivilege",
    "restartIdentifier",
    "startupTimeoutSeconds",
)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the gate listens for client devices and the largest packet the broker takes; ``ignored`` lists the
    dotted keys accepted without meaning here."""

    component: str = MOQUETTE
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    ignored: tuple[str, ...] = ()


def parse_broker_settings(configuration: Any, component: str = MOQUETTE) -> BrokerSettings:
    """The settings of ``component`` (:data:`MOQUETTE` or :data:`EMQX`) for ``configuration``.

    Raises:
        ClientDeviceConfigurationError: a value that cannot be used, naming its dotted key.
    """
    if component not in (MOQUETTE, EMQX):
        raise ValueError(f"{component!r} is not a local broker component")
    if configuration is None:
        configuration = {}
    body = object_at(component, configuration, "")
    if component == MOQUETTE:
        return _moquette(body)
    return _emqx(body)


def _moquette(body: Mapping[str, Any]) -> BrokerSettings:
    only_keys(MOQUETTE, body, "", ("moquette", *_MOQUETTE_IGNORED_TOP))
    moquette = object_in(MOQUETTE, body, "moquette", "moquette")
    ignored = [name for name in body if name in _MOQUETTE_IGNORED_TOP]
    ignored += [
        f"moquette.{name}" for name in moquette if name not in ("ssl_port", "host", "netty.mqtt.message_size")
    ]
    return BrokerSettings(
        component=MOQUETTE,
        host=_host(MOQUETTE, moquette.get("host", DEFAULT_HOST), "moquette.host"),
        port=whole_number(MOQUETTE, moquette.get("ssl_port", DEFAULT_PORT), "moquette.ssl_port", (1, 65535)),
        max_packet_size=whole_number(
            MOQUETTE,
            moquette.get("netty.mqtt.message_size", DEFAULT_MAX_PACKET_SIZE),
            "moquette.netty.mqtt.message_size",
            PACKET_SIZE_RANGE,
        ),
        ignored=tuple(sorted(ignored)),
    )


def _emqx(body: Mapping[str, Any]) -> BrokerSettings:
    only_keys(EMQX, body, "", ("emqxConfig", "emqx", *_EMQX_IGNORED_TOP))
    ignored = [name for name in body if name in _EMQX_IGNORED_TOP]
    host, port = DEFAULT_HOST, DEFAULT_PORT
    legacy = object_in(EMQX, body, "emqx", "emqx")
    for name in legacy:
        if name == "listener.ssl.external":
            host, port = _bind(legacy[name], "emqx.listener.ssl.external")
        else:
            ignored.append(f"emqx.{name}")
    config = object_in(EMQX, body, "emqxConfig", "emqxConfig")
    for name, value in config.items():
        if name != "listeners":
            ignored.append(f"emqxConfig.{name}")
            continue
        listeners = object_at(EMQX, value, "emqxConfig.listeners")
        for kind, by_name in listeners.items():
            kind_key = f"emqxConfig.listeners.{kind}"
            for listener, settings in object_at(EMQX, by_name, kind_key).items():
                key = f"{kind_key}.{listener}"
                fields = object_at(EMQX, settings, key)
                if kind == "ssl" and listener == "default" and "bind" in fields:
                    host, port = _bind(fields["bind"], f"{key}.bind")
                    ignored += [f"{key}.{field}" for field in fields if field != "bind"]
                else:
                    ignored.append(key)
    return BrokerSettings(component=EMQX, host=host, port=port, ignored=tuple(sorted(ignored)))


def _bind(value: Any, key: str) -> tuple[str, int]:
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    return _host(EMQX, host, key), whole_number(EMQX, port, key, (1, 65535))


def _host(component: str, value: Any, key: str) -> str:
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            pass
    raise ClientDeviceConfigurationError(component, key, f"must be an IP address to listen on, not {value!r}")
