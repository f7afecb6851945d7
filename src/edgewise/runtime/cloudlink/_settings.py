"""The runtime configuration file (``edgewise runtime start --config FILE``) and the cloud link settings.

The file is YAML; every key is optional except the connection basics of ``cloud``::

    thingName: my-device
    cloud:
      endpoint: broker.example.com
      port: 8883
      clientId: my-device
      certificate: device.pem.crt      # relative paths are relative to the file
      privateKey: private.pem.key
      rootCa: AmazonRootCA1.pem
      keepAlive: 60
      spool: {maxBytes: 2621440, keepQos0WhenOffline: false}
      reconnect: {minDelay: 1, maxDelay: 120}
      fleet: {enabled: true, statusIntervalSeconds: 86400}
    artifacts: {maxExpandedBytes: 1073741824, maxCompressionRatio: 100, minFreeBytes: 67108864}

Unknown keys and bad values are errors naming the field; every problem is reported at once.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgewise.runtime.cloudlink.errors import ConfigFileError
from edgewise.runtime.settings import ArtifactLimits

#: ALPN protocol that lets AWS IoT Core accept MQTT with client certificates on port 443.
_ALPN_MQTT_443 = "x-amzn-mqtt-ca"
_MISSING = object()


@dataclass(frozen=True)
class SpoolSettings:
    """Where publishes wait while offline or unacknowledged."""

    max_bytes: int = 2_621_440  #: oldest messages are dropped beyond this (topic + payload + properties)
    keep_qos0_when_offline: bool = False


@dataclass(frozen=True)
class ReconnectSettings:
    """Exponential back-off with jitter between connection attempts, in seconds."""

    min_delay: float = 1.0
    max_delay: float = 120.0


@dataclass(frozen=True)
class FleetSettings:
    """The device agent (``edgewise.runtime.fleet``): fleet deployments, fleet status and presence."""

    enabled: bool = True  #: off for a broker that is not an Edgewise cloud (AWS IoT Core, a plain broker)
    status_interval: int = 86_400  #: seconds between the periodic COMPLETE fleet status messages


@dataclass(frozen=True)
class CloudSettings:
    """One MQTT 5 connection over mutual TLS."""

    endpoint: str
    certificate: Path
    private_key: Path
    root_ca: Path
    port: int = 8883
    client_id: str | None = None  #: None: the thing name
    keep_alive: int = 60
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    reconnect: ReconnectSettings = field(default_factory=ReconnectSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)

    def tls_context(self) -> ssl.SSLContext:
        """A client context that verifies the server against ``root_ca`` and presents the certificate.

        Blocks (reads the files). Raises ``ssl.SSLError`` or ``OSError`` for files that cannot be used.
        """
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.root_ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.certificate), str(self.private_key))
        if self.port == 443:
            context.set_alpn_protocols([_ALPN_MQTT_443])
        return context


@dataclass(frozen=True)
class RuntimeFileSettings:
    """What the runtime configuration file says."""

    thing_name: str | None = None
    cloud: CloudSettings | None = None
    artifacts: ArtifactLimits = field(default_factory=ArtifactLimits)


def _name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class _Reader:
    """Reads typed values out of parsed YAML, collecting one problem per bad field."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[str] = []

    def section(self, value: Any, where: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.problems.append(f"{where or 'the file'}: expected a mapping, got {value!r}")
            return {}
        for key in value:
            if key not in allowed:
                self.problems.append(
                    f"{_name(where, key)}: unknown key (expected one of {', '.join(allowed)})"
                )
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, where: str, low: int, high: int, default: int
    ) -> int:
        value = data.get(key, default)
        if type(value) is not int or not low <= value <= high:
            self.problems.append(f"{_name(where, key)}: expected an integer {low}-{high}, got {value!r}")
            return default
        return value

    def seconds(self, data: Mapping[str, Any], key: str, where: str, default: float) -> float:
        value = data.get(key, default)
        if type(value) not in (int, float) or not 0 < value <= 86400 or not math.isfinite(value):
            self.problems.append(f"{_name(where, key)}: expected a number of seconds above 0, got {value!r}")
            return default
        return float(value)

    def boolean(self, data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problems.append(f"{_name(where, key)}: expected true or false, got {value!r}")
            return default
        return value

    def string(self, data: Mapping[str, Any], key: str, where: str, *, max_length: int = 128) -> str | None:
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or not value or len(value) > max_length:
            self.problems.append(
                f"{_name(where, key)}: expected a string of 1-{max_length} characters, got {value!r}"
            )
            return None
        return value

    def required(self, data: Mapping[str, Any], key: str, where: str) -> bool:
        if key not in data:
            self.problems.append(f"{_name(where, key)}: required")
            return False
        return True

    def file(self, data: Mapping[str, Any], key: str, where: str) -> Path:
        if not self.required(data, key, where):
            return Path()
        text = self.string(data, key, where, max_length=4096)
        if text is None:
            return Path()
        path = (self.base_dir / Path(text).expanduser()).resolve()
        if not path.exists():
            self.problems.append(f"{_name(where, key)}: file {path} does not exist")
        elif not path.is_file():
            self.problems.append(f"{_name(where, key)}: {path} is not a file")
        else:
            try:
                with path.open("rb"):
                    pass
            except OSError as exc:
                self.problems.append(f"{_name(where, key)}: cannot read {path}: {exc.strerror}")
        return path


def _endpoint(reader: _Reader, data: Mapping[str, Any]) -> str:
    if not reader.required(data, "endpoint", "cloud"):
        return ""
    value = reader.string(data, "endpoint", "cloud", max_length=253)
    if value is not None and ("://" in value or any(char.isspace() or char in "/:" for char in value)):
        reader.problems.append(f"cloud.endpoint: expected a host name like broker.example.com, got {value!r}")
    return value or ""


def _check_tls(reader: _Reader, cloud: CloudSettings) -> None:
    try:
        ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cloud.root_ca))
    except (ssl.SSLError, OSError) as exc:
        reader.problems.append(f"cloud.rootCa: no CA certificate can be loaded from {cloud.root_ca}: {exc}")
        return
    try:
        cloud.tls_context()
    except (ssl.SSLError, OSError) as exc:
        reader.problems.append(
            f"cloud.certificate, cloud.privateKey: {cloud.certificate} and {cloud.private_key} "
            f"are not a matching PEM certificate and key: {exc}"
        )


def _cloud(reader: _Reader, value: Any) -> CloudSettings | None:
    allowed = (
        "endpoint",
        "port",
        "clientId",
        "certificate",
        "privateKey",
        "rootCa",
        "keepAlive",
        "spool",
        "reconnect",
        "fleet",
    )
    data = reader.section(value, "cloud", allowed)
    if not isinstance(value, Mapping):
        return None
    before = len(reader.problems)
    spool = reader.section(data.get("spool", {}), "cloud.spool", ("maxBytes", "keepQos0WhenOffline"))
    reconnect = reader.section(data.get("reconnect", {}), "cloud.reconnect", ("minDelay", "maxDelay"))
    fleet = reader.section(data.get("fleet", {}), "cloud.fleet", ("enabled", "statusIntervalSeconds"))
    min_delay = reader.seconds(reconnect, "minDelay", "cloud.reconnect", 1.0)
    max_delay = reader.seconds(reconnect, "maxDelay", "cloud.reconnect", max(120.0, min_delay))
    if max_delay < min_delay:
        reader.problems.append(
            f"cloud.reconnect.maxDelay: must not be below minDelay ({min_delay:g}), got {max_delay:g}"
        )
    cloud = CloudSettings(
        endpoint=_endpoint(reader, data),
        port=reader.integer(data, "port", "cloud", 1, 65535, 8883),
        client_id=reader.string(data, "clientId", "cloud"),
        certificate=reader.file(data, "certificate", "cloud"),
        private_key=reader.file(data, "privateKey", "cloud"),
        root_ca=reader.file(data, "rootCa", "cloud"),
        keep_alive=reader.integer(data, "keepAlive", "cloud", 5, 1200, 60),
        spool=SpoolSettings(
            max_bytes=reader.integer(spool, "maxBytes", "cloud.spool", 1024, 2**40, 2_621_440),
            keep_qos0_when_offline=reader.boolean(spool, "keepQos0WhenOffline", "cloud.spool", False),
        ),
        reconnect=ReconnectSettings(min_delay=min_delay, max_delay=max_delay),
        fleet=FleetSettings(
            enabled=reader.boolean(fleet, "enabled", "cloud.fleet", True),
            status_interval=reader.integer(
                fleet, "statusIntervalSeconds", "cloud.fleet", 1, 31_536_000, 86_400
            ),
        ),
    )
    if len(reader.problems) == before:
        _check_tls(reader, cloud)
    return cloud


def _artifacts(reader: _Reader, value: Any) -> ArtifactLimits:
    data = reader.section(value, "artifacts", ("maxExpandedBytes", "maxCompressionRatio", "minFreeBytes"))
    default = ArtifactLimits()
    return ArtifactLimits(
        max_expanded_bytes=reader.integer(
            data, "maxExpandedBytes", "artifacts", 1, 2**50, default.max_expanded_bytes
        ),
        max_compression_ratio=reader.integer(
            data, "maxCompressionRatio", "artifacts", 1, 1_000_000, default.max_compression_ratio
        ),
        min_free_bytes=reader.integer(data, "minFreeBytes", "artifacts", 0, 2**50, default.min_free_bytes),
    )


def parse_config_file(data: Any, *, base_dir: Path, path: Path) -> RuntimeFileSettings:
    """Validate parsed YAML. Blocks (checks the certificate files).

    Raises:
        ConfigFileError: listing every problem, each naming its field.
    """
    reader = _Reader(base_dir)
    top = reader.section({} if data is None else data, "", ("thingName", "cloud", "artifacts"))
    thing_name = reader.string(top, "thingName", "")
    cloud = _cloud(reader, top["cloud"]) if "cloud" in top else None
    artifacts = _artifacts(reader, top.get("artifacts", {}))
    if reader.problems:
        raise ConfigFileError(path, reader.problems)
    return RuntimeFileSettings(thing_name=thing_name, cloud=cloud, artifacts=artifacts)


def load_config_file(path: Path) -> RuntimeFileSettings:
    """Read and validate the runtime configuration file. Blocks (file system): call it off the event loop.

    Raises:
        ConfigFileError: the file cannot be read, is not YAML, or has invalid fields (all of them listed).
    """
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigFileError(path, [f"cannot read the file: {reason}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(path, [f"not valid YAML: {exc}"]) from exc
    return parse_config_file(data, base_dir=path.parent, path=path)
