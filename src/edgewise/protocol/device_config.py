"""The device configuration file (``edgewise.yaml``): what ``edgewise device bootstrap`` writes and the runtime
reads (``edgewise runtime start --config FILE``), defined once.

The file is YAML; every key is optional except the connection basics of ``cloud``::

    thingName: my-device
    cloud:
      endpoint: broker.example.com
      port: 8883
      httpsPort: 8444                  # the cloud's HTTPS listener on the same host (S3 export uploads)
      clientId: my-device
      certificate: device.pem.crt      # relative paths are relative to the file
      privateKey: private.pem.key
      rootCa: AmazonRootCA1.pem
      keepAlive: 60
      spool: {maxBytes: 2621440, keepQos0WhenOffline: false}
      reconnect: {minDelay: 1, maxDelay: 120}
      fleet: {enabled: true, statusIntervalSeconds: 86400, confirmIntervalSeconds: 10}
    artifacts: {maxExpandedBytes: 1073741824, maxCompressionRatio: 100, minFreeBytes: 67108864}

:func:`write_device_config` turns a :class:`DeviceConfig` into that text; :func:`parse_device_config` turns the
text back into a :class:`DeviceConfig`, refusing unknown keys and bad values with one
:class:`DeviceConfigError` that names every bad field. The runtime builds its own settings from the result
(``edgewise.runtime.config_file``).

Usage::

    text = write_device_config(DeviceConfig(thing_name="my-device", cloud=CloudSection(...)))
    config = parse_device_config(text, base_dir=Path("/etc/edgewise"))
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgewise.errors import EdgewiseError

_TOP_KEYS = ("thingName", "cloud", "artifacts")
_CLOUD_KEYS = (
    "endpoint",
    "port",
    "httpsPort",
    "clientId",
    "certificate",
    "privateKey",
    "rootCa",
    "keepAlive",
    "spool",
    "reconnect",
    "fleet",
)
_SPOOL_KEYS = ("maxBytes", "keepQos0WhenOffline")
_RECONNECT_KEYS = ("minDelay", "maxDelay")
_FLEET_KEYS = ("enabled", "statusIntervalSeconds", "confirmIntervalSeconds")
_ARTIFACTS_KEYS = ("maxExpandedBytes", "maxCompressionRatio", "minFreeBytes")
_MISSING = object()


class DeviceConfigError(EdgewiseError):
    """The device configuration file is not valid; ``problems`` names each bad field."""

    def __init__(self, problems: Sequence[str]) -> None:
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"The device configuration is not valid:\n{lines}")
        self.problems = tuple(problems)


@dataclass(frozen=True)
class SpoolSection:
    """``cloud.spool``: where publishes wait while offline or unacknowledged."""

    max_bytes: int = 2_621_440  #: oldest messages are dropped beyond this (topic + payload + properties)
    keep_qos0_when_offline: bool = False


@dataclass(frozen=True)
class ReconnectSection:
    """``cloud.reconnect``: exponential back-off with jitter between connection attempts, in seconds."""

    min_delay: float = 1.0
    max_delay: float = 120.0  #: absent from the file: 120 or minDelay, whichever is larger


@dataclass(frozen=True)
class FleetSection:
    """``cloud.fleet``: the device agent (fleet deployments, fleet status and presence)."""

    enabled: bool = True  #: off for a broker that is not an Edgewise cloud (AWS IoT Core, a plain broker)
    status_interval: int = 86_400  #: ``statusIntervalSeconds``: between the periodic COMPLETE status messages
    #: ``confirmIntervalSeconds``: how long a jobs question or final report waits for its answer before it is
    #: asked or checked again
    confirm_interval: int = 10


@dataclass(frozen=True)
class CloudSection:
    """``cloud``: one MQTT 5 connection over mutual TLS.

    The parser gives the files as absolute paths (resolved against the file's directory); the writer writes
    them as given, so relative paths stay relative to the file.
    """

    endpoint: str
    certificate: Path
    private_key: Path
    root_ca: Path
    port: int = 8883
    #: The port of the cloud's HTTPS listener (HTTPS publish, stream manager S3 export uploads) on ``endpoint``.
    https_port: int = 8444
    client_id: str | None = None  #: None: the thing name
    keep_alive: int = 60
    spool: SpoolSection = field(default_factory=SpoolSection)
    reconnect: ReconnectSection = field(default_factory=ReconnectSection)
    fleet: FleetSection = field(default_factory=FleetSection)


@dataclass(frozen=True)
class ArtifactsSection:
    """``artifacts``: bounds on unpacking and copying artifacts into the component store."""

    max_expanded_bytes: int = 1 << 30
    max_compression_ratio: int = 100
    min_free_bytes: int = 64 << 20


@dataclass(frozen=True)
class DeviceConfig:
    """The whole file."""

    thing_name: str | None = None  #: None: the runtime's ``--thing-name``
    cloud: CloudSection | None = None  #: None: the runtime runs offline
    artifacts: ArtifactsSection = field(default_factory=ArtifactsSection)


def write_device_config(config: DeviceConfig) -> str:
    """The file's YAML text: ``thingName`` when set; of ``cloud`` the endpoint, port and files always, the rest
    where it is not the default; ``artifacts`` where not the default. Keys keep the order of the docs."""
    document: dict[str, Any] = {}
    if config.thing_name is not None:
        document["thingName"] = config.thing_name
    if config.cloud is not None:
        document["cloud"] = _write_cloud(config.cloud)
    if config.artifacts != ArtifactsSection():
        artifacts = config.artifacts
        document["artifacts"] = {
            "maxExpandedBytes": artifacts.max_expanded_bytes,
            "maxCompressionRatio": artifacts.max_compression_ratio,
            "minFreeBytes": artifacts.min_free_bytes,
        }
    import yaml  # on first use: a runtime started without a device file never needs PyYAML

    return yaml.safe_dump(document, sort_keys=False)


def _write_cloud(cloud: CloudSection) -> dict[str, Any]:
    section: dict[str, Any] = {"endpoint": cloud.endpoint, "port": cloud.port}
    if cloud.https_port != CloudSection.https_port:
        section["httpsPort"] = cloud.https_port
    if cloud.client_id is not None:
        section["clientId"] = cloud.client_id
    section["certificate"] = str(cloud.certificate)
    section["privateKey"] = str(cloud.private_key)
    section["rootCa"] = str(cloud.root_ca)
    if cloud.keep_alive != CloudSection.keep_alive:
        section["keepAlive"] = cloud.keep_alive
    if cloud.spool != SpoolSection():
        section["spool"] = {
            "maxBytes": cloud.spool.max_bytes,
            "keepQos0WhenOffline": cloud.spool.keep_qos0_when_offline,
        }
    if cloud.reconnect != ReconnectSection():
        section["reconnect"] = {"minDelay": cloud.reconnect.min_delay, "maxDelay": cloud.reconnect.max_delay}
    if cloud.fleet != FleetSection():
        section["fleet"] = {
            "enabled": cloud.fleet.enabled,
            "statusIntervalSeconds": cloud.fleet.status_interval,
            "confirmIntervalSeconds": cloud.fleet.confirm_interval,
        }
    return section


def parse_device_config(text: str, *, base_dir: Path) -> DeviceConfig:
    """Parse and validate the file's text; relative file paths are taken relative to ``base_dir``.

    Blocks: checks that the files of ``cloud`` exist and load as a CA and a matching certificate and key.

    Raises:
        DeviceConfigError: the text is not YAML, or lists every invalid field, each as ``path.to.key: problem``.
    """
    import yaml  # on first use: a runtime started without a device file never needs PyYAML

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeviceConfigError([f"not valid YAML: {exc}"]) from exc
    reader = _Reader(base_dir)
    top = reader.section({} if data is None else data, "", _TOP_KEYS)
    thing_name = reader.string(top, "thingName", "")
    cloud = _cloud(reader, top["cloud"]) if "cloud" in top else None
    artifacts = _artifacts(reader, top.get("artifacts", {}))
    if reader.problems:
        raise DeviceConfigError(reader.problems)
    return DeviceConfig(thing_name=thing_name, cloud=cloud, artifacts=artifacts)


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


def _check_tls(reader: _Reader, cloud: CloudSection) -> None:
    """The files load as the client side of mutual TLS does (the runtime's cloud link loads them the same way)."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cloud.root_ca))
    except (ssl.SSLError, OSError) as exc:
        reader.problems.append(f"cloud.rootCa: no CA certificate can be loaded from {cloud.root_ca}: {exc}")
        return
    try:
        context.load_cert_chain(str(cloud.certificate), str(cloud.private_key))
    except (ssl.SSLError, OSError) as exc:
        reader.problems.append(
            f"cloud.certificate, cloud.privateKey: {cloud.certificate} and {cloud.private_key} "
            f"are not a matching PEM certificate and key: {exc}"
        )


def _cloud(reader: _Reader, value: Any) -> CloudSection | None:
    data = reader.section(value, "cloud", _CLOUD_KEYS)
    if not isinstance(value, Mapping):
        return None
    before = len(reader.problems)
    spool = reader.section(data.get("spool", {}), "cloud.spool", _SPOOL_KEYS)
    reconnect = reader.section(data.get("reconnect", {}), "cloud.reconnect", _RECONNECT_KEYS)
    fleet = reader.section(data.get("fleet", {}), "cloud.fleet", _FLEET_KEYS)
    min_delay = reader.seconds(reconnect, "minDelay", "cloud.reconnect", ReconnectSection.min_delay)
    max_delay = reader.seconds(
        reconnect, "maxDelay", "cloud.reconnect", max(ReconnectSection.max_delay, min_delay)
    )
    if max_delay < min_delay:
        reader.problems.append(
            f"cloud.reconnect.maxDelay: must not be below minDelay ({min_delay:g}), got {max_delay:g}"
        )
    cloud = CloudSection(
        endpoint=_endpoint(reader, data),
        port=reader.integer(data, "port", "cloud", 1, 65535, CloudSection.port),
        https_port=reader.integer(data, "httpsPort", "cloud", 1, 65535, CloudSection.https_port),
        client_id=reader.string(data, "clientId", "cloud"),
        certificate=reader.file(data, "certificate", "cloud"),
        private_key=reader.file(data, "privateKey", "cloud"),
        root_ca=reader.file(data, "rootCa", "cloud"),
        keep_alive=reader.integer(data, "keepAlive", "cloud", 5, 1200, CloudSection.keep_alive),
        spool=SpoolSection(
            max_bytes=reader.integer(spool, "maxBytes", "cloud.spool", 1024, 2**40, SpoolSection.max_bytes),
            keep_qos0_when_offline=reader.boolean(
                spool, "keepQos0WhenOffline", "cloud.spool", SpoolSection.keep_qos0_when_offline
            ),
        ),
        reconnect=ReconnectSection(min_delay=min_delay, max_delay=max_delay),
        fleet=FleetSection(
            enabled=reader.boolean(fleet, "enabled", "cloud.fleet", FleetSection.enabled),
            status_interval=reader.integer(
                fleet, "statusIntervalSeconds", "cloud.fleet", 1, 31_536_000, FleetSection.status_interval
            ),
            confirm_interval=reader.integer(
                fleet, "confirmIntervalSeconds", "cloud.fleet", 1, 3600, FleetSection.confirm_interval
            ),
        ),
    )
    if len(reader.problems) == before:
        _check_tls(reader, cloud)
    return cloud


def _artifacts(reader: _Reader, value: Any) -> ArtifactsSection:
    data = reader.section(value, "artifacts", _ARTIFACTS_KEYS)
    default = ArtifactsSection()
    return ArtifactsSection(
        max_expanded_bytes=reader.integer(
            data, "maxExpandedBytes", "artifacts", 1, 2**50, default.max_expanded_bytes
        ),
        max_compression_ratio=reader.integer(
            data, "maxCompressionRatio", "artifacts", 1, 1_000_000, default.max_compression_ratio
        ),
        min_free_bytes=reader.integer(data, "minFreeBytes", "artifacts", 0, 2**50, default.min_free_bytes),
    )
