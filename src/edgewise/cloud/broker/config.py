"""Mosquitto 2 configuration: the settings of the managed broker and the files rendered from them.

The broker has two listeners, each with its own security settings (``per_listener_settings true``):

- the device listener, mutual TLS: a client must present a certificate signed by ``cafile`` (and not in
  ``crlfile``); its common name becomes its user name (``use_identity_as_username``) *and* its client id
  (``use_username_as_clientid``), and the ACL file rendered by :mod:`.acl` grants it topics by that name.
- the optional worker listener for the cloud's own MQTT workers, bound to 127.0.0.1 only, authenticated by
  user name and password from a password file (PBKDF2-SHA512, Mosquitto's ``$7$`` format). It has no ACL
  file, so an authenticated worker may use every topic. A password rather than a second client
  certificate keeps the worker identity out of the device CA, so no device certificate can ever claim it.

Every packet, from a device or a worker, is at most ``max_packet_size`` bytes (Mosquitto's ``max_packet_size``
applies to all listeners): a client that sends a larger one is disconnected before the broker reads it whole.
The default leaves room for the largest messages the cloud itself sends (component resolve answers carrying
recipes, job documents of up to 32 KiB), while the workers take at most 128 KiB from a device (see
:mod:`edgewise.cloud.workerlink`).

What refuses client ids and user names containing ``+``, ``#`` or ``/`` (Mosquitto 2.0.11 has no option to
refuse a CONNECT whose client id differs from the certificate, and ``use_identity_as_username`` skips
password and dynamic-security authentication, so a client-id binding plugin would never run):

- the client id a device sends is discarded and replaced by its certificate's common name, so a device can
  neither pick a dangerous client id nor take over another device's session;
- the common name is a thing name issued by our CA (``[a-zA-Z0-9:_-]``), and :mod:`.acl` refuses to render
  any other name, so a certificate with another name has no ACL section and may use no topic;
- Mosquitto itself denies every ACL check for a client whose user name or client id contains ``+`` or ``#``
  when pattern ACLs exist (we render none; the two points above already cover it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgewise.cloud.broker.errors import BrokerConfigError

#: Mosquitto's own default for ``mosquitto_passwd`` (2.0); the worker password is random, not a human one.
PASSWORD_ITERATIONS = 101
#: The largest MQTT packet the managed broker takes by default.
DEFAULT_MAX_PACKET_SIZE = 4 * 1024 * 1024
DEFAULT_MAX_QUEUED_MESSAGES = 100_000
DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024
#: Below this a job document (32 KiB) and its reply could not pass; above it MQTT cannot count.
MAX_PACKET_SIZE_RANGE = (64 * 1024, 268_435_455)
_SALT_BYTES = 12  # Mosquitto refuses any other salt length
_CONFIG_UNSAFE = ("\n", "\r", "\0")


def _check_port(field_name: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise BrokerConfigError(field_name, f"port {port} is not between 1 and 65535")


def _check_line_safe(field_name: str, value: str) -> None:
    """Every value lands on a line of a Mosquitto file: a line break would start a new directive."""
    if not value or value != value.strip():
        raise BrokerConfigError(field_name, f"{value!r} is empty or starts or ends with white space")
    if any(character in value for character in _CONFIG_UNSAFE):
        raise BrokerConfigError(field_name, f"{value!r} contains a line break or NUL")


@dataclass(frozen=True)
class DeviceListenerSettings:
    """The mutual-TLS listener devices connect to."""

    port: int
    cafile: Path
    certfile: Path
    keyfile: Path
    host: str = "0.0.0.0"  # noqa: S104 - devices connect over the network
    #: PEM CRL of the device CA; Mosquitto re-reads it on reload (SIGHUP). Must exist when set.
    crlfile: Path | None = None
    #: The oldest TLS version accepted.
    tls_version: Literal["tlsv1.2", "tlsv1.3"] = "tlsv1.2"

    def __post_init__(self) -> None:
        _check_port("devices.port", self.port)
        _check_line_safe("devices.host", self.host)
        for name in ("cafile", "certfile", "keyfile", "crlfile"):
            value = getattr(self, name)
            if value is not None:
                _check_line_safe(f"devices.{name}", str(value))


@dataclass(frozen=True)
class WorkerListenerSettings:
    """The loopback listener of the cloud's own MQTT workers (user name and password, every topic)."""

    port: int
    password: str = field(repr=False)
    username: str = "edgewise-worker"

    def __post_init__(self) -> None:
        _check_port("workers.port", self.port)
        _check_line_safe("workers.username", self.username)
        if ":" in self.username or any(character.isspace() for character in self.username):
            raise BrokerConfigError("workers.username", f"{self.username!r} contains ':' or white space")
        if len(self.password) < 16 or any(character in self.password for character in _CONFIG_UNSAFE):
            raise BrokerConfigError("workers.password", "must be at least 16 characters without line breaks")

    @classmethod
    def generate(cls, port: int, *, username: str = "edgewise-worker") -> WorkerListenerSettings:
        """Settings with a fresh random password."""
        return cls(port=port, password=secrets.token_urlsafe(32), username=username)


@dataclass(frozen=True)
class BrokerSettings:
    """Everything the managed Mosquitto needs; its files live in ``data_dir``."""

    data_dir: Path
    devices: DeviceListenerSettings
    workers: WorkerListenerSettings | None = None
    #: Keep sessions and queued messages across broker restarts (in ``data_dir/persistence``).
    persistence: bool = True
    #: The account Mosquitto switches to when started as root (it defaults to ``mosquitto``).
    run_as_user: str | None = None
    #: The largest packet any client may send, in bytes; a client sending a larger one is disconnected.
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    #: QoS 1 messages Mosquitto holds for one client beyond those in flight, and their bytes; past either it
    #: drops the client's messages. Mosquitto's default (1,000 messages) drops telemetry and rule input when a
    #: worker falls a second behind a burst; devices are limited to their own topics, so their queues stay small.
    max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES

    def __post_init__(self) -> None:
        _check_line_safe("data_dir", str(self.data_dir))
        low, high = MAX_PACKET_SIZE_RANGE
        if not low <= self.max_packet_size <= high:
            raise BrokerConfigError(
                "max_packet_size", f"{self.max_packet_size} bytes is not between {low} and {high}"
            )
        if self.max_queued_messages < 1:
            raise BrokerConfigError(
                "max_queued_messages", f"{self.max_queued_messages} is not a positive count"
            )
        if self.max_queued_bytes < 1:
            raise BrokerConfigError("max_queued_bytes", f"{self.max_queued_bytes} is not a positive size")
        if self.run_as_user is not None:
            _check_line_safe("run_as_user", self.run_as_user)
        if self.workers is not None and self.workers.port == self.devices.port:
            raise BrokerConfigError("workers.port", f"port {self.workers.port} is already the devices' port")

    @property
    def config_file(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    @property
    def acl_file(self) -> Path:
        return self.data_dir / "devices.acl"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "workers.passwd"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "mosquitto.log"

    @property
    def persistence_dir(self) -> Path:
        return self.data_dir / "persistence"


def render_config(settings: BrokerSettings) -> str:
    """The text of ``mosquitto.conf`` for ``settings``."""
    devices = settings.devices
    lines = [
        "# Rendered by Edgewise from its broker settings on every start; edits here are lost.",
        "per_listener_settings true",
        f"persistence {'true' if settings.persistence else 'false'}",
    ]
    if settings.persistence:
        lines.append(f"persistence_location {settings.persistence_dir}/")
    lines += [
        f"log_dest file {settings.log_file}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        f"max_packet_size {settings.max_packet_size}",
        f"max_queued_messages {settings.max_queued_messages}",
        f"max_queued_bytes {settings.max_queued_bytes}",
        # Without it a reply written in two pieces waits for the peer's delayed ACK (about 40 ms a message).
        "set_tcp_nodelay true",
    ]
    if settings.run_as_user is not None:
        lines.append(f"user {settings.run_as_user}")
    lines += [
        "",
        f"listener {devices.port} {devices.host}",
        f"cafile {devices.cafile}",
        f"certfile {devices.certfile}",
        f"keyfile {devices.keyfile}",
    ]
    if devices.crlfile is not None:
        lines.append(f"crlfile {devices.crlfile}")
    lines += [
        f"tls_version {devices.tls_version}",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        f"acl_file {settings.acl_file}",
    ]
    if settings.workers is not None:
        lines += [
            "",
            f"listener {settings.workers.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {settings.password_file}",
        ]
    return "\n".join(lines) + "\n"


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PASSWORD_ITERATIONS) -> str:
    """``password`` as a Mosquitto 2 password-file hash: ``$7$<iterations>$<salt>$<PBKDF2-SHA512>``."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    if len(salt) != _SALT_BYTES:
        raise BrokerConfigError("salt", f"must be {_SALT_BYTES} bytes, not {len(salt)}")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def render_password_file(passwords: Mapping[str, str]) -> str:
    """A Mosquitto password file for ``passwords`` (user name to clear-text password), sorted by name."""
    return "".join(f"{username}:{hash_password(passwords[username])}\n" for username in sorted(passwords))


def write_file_atomically(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` so that a reader (Mosquitto on reload) sees the old or the new file,
    never a partial one. Blocks (file I/O and fsync)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_config(settings: BrokerSettings) -> Path:
    """Write ``mosquitto.conf`` and the worker password file into the data directory, and an ACL file that
    grants nothing if there is none yet (Mosquitto refuses to start without it). Returns the config path.
    Blocks (file I/O)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.persistence:
        settings.persistence_dir.mkdir(exist_ok=True, mode=0o700)
    if settings.workers is not None:
        passwords = {settings.workers.username: settings.workers.password}
        write_file_atomically(settings.password_file, render_password_file(passwords))
    if not settings.acl_file.exists():
        write_file_atomically(settings.acl_file, "# No device has any permission yet.\n")
    write_file_atomically(settings.config_file, render_config(settings))
    return settings.config_file
