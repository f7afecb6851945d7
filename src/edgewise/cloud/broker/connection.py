"""How the cloud's own workers reach the broker, managed or external: one value every worker connects with.

The managed Mosquitto gives workers a loopback listener with a random password (:meth:`BrokerConnection.
for_listener`); an external broker is named by a URL plus credentials and a CA (:meth:`BrokerConnection.
from_url`). A worker never needs to know which: it asks for :meth:`BrokerConnection.new_client` and connects
that client to ``host`` and ``port``.

Usage::

    connection = BrokerConnection.from_url("mqtts://broker:8884", username="cloud", password=secret)
    client = connection.new_client("edgewise-jobs")
    client.connect(connection.host, connection.port, keepalive=30)   # blocks; run it in a thread
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgewise.cloud.broker.config import WorkerListenerSettings
from edgewise.cloud.broker.errors import BrokerConfigError

#: URL schemes a broker can be named by, and whether each means TLS.
SCHEMES = {"mqtt": False, "mqtts": True}
_UNSAFE = ("\n", "\r", "\0")
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _redacted(url: str) -> str:
    """``url`` with any user name and password replaced by ``...``, to quote it in a message."""
    return re.sub(r"//[^/?#]*@", "//...@", url)


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Send each packet at once: a worker's answer must not wait for the broker's delayed ACK (Nagle)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True)
class BrokerEndpoint:
    """A broker's address from an ``mqtt://host:port`` or ``mqtts://host:port`` URL."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str, *, field_name: str = "url") -> BrokerEndpoint:
        """The endpoint ``url`` names.

        Raises:
            BrokerConfigError: ``url`` is not ``mqtt[s]://host:port`` (credentials, a path, a query or a
                fragment in it are refused: a password in a URL ends up in process lists and logs).
        """
        if not isinstance(url, str) or any(character in url for character in _UNSAFE):
            raise BrokerConfigError(field_name, f"{url!r} is not a URL")
        expected = f"{_redacted(url)!r} is not of the form mqtt://host:port or mqtts://host:port"
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise BrokerConfigError(field_name, f"{expected} ({exc})") from None
        if parts.scheme not in SCHEMES or not host or port is None or port == 0:
            raise BrokerConfigError(field_name, expected)
        if parts.username is not None or parts.password is not None:
            raise BrokerConfigError(
                field_name, f"{parts.scheme}://...@{host} has credentials; give them separately"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise BrokerConfigError(field_name, f"{expected} (it has a path, query or fragment)")
        if not _HOST_NAME.fullmatch(host) and not _is_ip_address(host):
            raise BrokerConfigError(field_name, f"{expected} ({host!r} is not a host name or IP address)")
        return cls(host=host, port=port, tls=SCHEMES[parts.scheme])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


@dataclass(frozen=True)
class BrokerConnection:
    """Where and how a cloud worker connects: address, optional user name and password, TLS trust."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    #: CA certificates the broker's server certificate must chain to; ``None`` is the system trust store.
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise BrokerConfigError("port", f"port {self.port} is not between 1 and 65535")
        if self.password is not None and self.username is None:
            raise BrokerConfigError("password", "is set without a user name")
        for name in ("username", "password"):
            value = getattr(self, name)
            if value is not None and (not value or any(character in value for character in _UNSAFE)):
                raise BrokerConfigError(name, "is empty or contains a line break or NUL")
        if self.ca_file is not None and not self.tls:
            raise BrokerConfigError("ca_file", f"is only for a TLS connection, and {self.url} is not one")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> BrokerConnection:
        """A connection to the broker ``url`` names (``mqtt://`` plain, ``mqtts://`` TLS).

        Raises:
            BrokerConfigError: a bad URL, a password without a user name, or a CA file for plain MQTT.
        """
        endpoint = BrokerEndpoint.parse(url)
        return cls(
            endpoint.host,
            endpoint.port,
            username=username,
            password=password,
            tls=endpoint.tls,
            ca_file=ca_file,
        )

    @classmethod
    def for_listener(cls, listener: WorkerListenerSettings) -> BrokerConnection:
        """The managed Mosquitto's loopback worker listener."""
        return cls("127.0.0.1", listener.port, username=listener.username, password=listener.password)

    @property
    def url(self) -> str:
        """The broker's URL, without credentials (safe to log)."""
        return BrokerEndpoint(self.host, self.port, self.tls).url

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context to connect with (server certificate and host name checked), or None for plain MQTT.
        Blocks (reads the CA file).

        Raises:
            BrokerConfigError: the CA file cannot be read or holds no certificate.
        """
        if not self.tls:
            return None
        try:
            return ssl.create_default_context(cafile=None if self.ca_file is None else str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise BrokerConfigError(
                "ca_file", f"{self.ca_file} cannot be used as CA certificates: {exc}"
            ) from exc

    def new_client(self, client_id: str) -> paho.Client:
        """A paho MQTT 5 client set up with this connection's credentials and TLS; connect it to ``host`` and
        ``port``. Blocks (reads the CA file).

        Raises:
            BrokerConfigError: the CA file cannot be used.
        """
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        client.on_socket_open = _no_delay
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        context = self.tls_context()
        if context is not None:
            client.tls_set_context(context)
        return client
