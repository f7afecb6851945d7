"""Prepares a cloud's data directory for serving: what ``edgewise cloud up`` does before it serves.

:func:`prepare` (blocking) does everything a first start needs and is idempotent afterwards: the data
directory, the database, the admin token, the certificate authority, the broker's server certificate and
``cloud.json`` (where the API and the MQTT endpoint are). :func:`edgewise.cloud.server.serve` then runs the
:class:`PreparedCloud` it returns.

With ``--broker external`` the broker is its operator's: for a TLS endpoint, a server certificate from the
cloud's CA is left in ``DIR/broker/`` to install on it. Every worker connects with
:attr:`PreparedCloud.worker_connection`, the one :class:`~edgewise.cloud.broker.BrokerConnection` for both
modes (the managed loopback listener, or the external broker's URL, user name, password and CA).

Data directory layout::

    DIR/edgewise.db          the SQLite store (unless --database-url)
    DIR/admin-token          the first admin API token (0600)
    DIR/ca/ca.pem, ca.key    the certificate authority (key 0600)
    DIR/broker/              Mosquitto's config, ACL, CRL, log, persistence, server.pem and server.key (0600),
                             and mosquitto.pid while it runs (a broker an earlier run left is stopped at start);
                             with an external broker: server.pem, server.key and hook-token (0600), the secret
                             the broker sends to the authorization hook
    DIR/dataplane/           the data plane's server.pem, server.key and URL signing.key (keys 0600)
    DIR/https-publish/       HTTPS publish's server.pem and server.key (0600), unless it is off
    DIR/artifacts/           the artifact store (unless --artifact-store s3://...); DIR/uploads/ stages uploads
    DIR/model-signing.key    the Ed25519 key model packages are signed with (0600)
    DIR/mlflow/              the model registry's MLflow database and model files (unless configured elsewhere)
    DIR/cloud.json           the API URL, the MQTT endpoint and the CA file, for the CLI and for devices
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509

from edgewise.cloud.app import initialize
from edgewise.cloud.broker import (
    BrokerConfigError,
    BrokerConnection,
    BrokerEndpoint,
    BrokerSettings,
    DeviceListenerSettings,
    WorkerListenerSettings,
    write_file_atomically,
)
from edgewise.cloud.broker.hook import ensure_hook_token
from edgewise.cloud.dataplane import DataPlaneSettings
from edgewise.cloud.errors import CloudStartError
from edgewise.cloud.https_publish import HttpsPublishSettings
from edgewise.cloud.identity import CA_CERTIFICATE_FILE, CertificateAuthority, load_or_create_ca
from edgewise.cloud.models import signing as model_signing
from edgewise.cloud.settings import ENV_PREFIX, TELEMETRY_TOPIC_FILTERS, CloudSettings
from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

BrokerMode = Literal["managed", "external"]
ENDPOINTS_FILE = "cloud.json"
CRL_FILE = "devices.crl"
_DNS_LABELS = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class ServerOptions:
    """What ``edgewise cloud up`` was asked for."""

    data_dir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    mqtt_port: int = 8883
    #: Empty means SQLite in ``data_dir``.
    database_url: str = ""
    broker: BrokerMode = "managed"
    #: ``mqtt[s]://host:port`` of the broker devices use; required with an external broker.
    broker_url: str | None = None
    #: Where the cloud's workers reach an external broker, if not at ``broker_url`` (e.g. a password listener).
    broker_worker_url: str | None = None
    #: The workers' user name and password on an external broker.
    broker_username: str | None = None
    broker_password: str | None = field(default=None, repr=False)
    #: CA certificates an external broker's TLS certificate must chain to (default: the cloud's CA).
    broker_ca_file: Path | None = None
    #: Where the artifact data plane (HTTPS) listens; devices download from it.
    data_plane_host: str = "0.0.0.0"  # noqa: S104 - devices connect over the network
    data_plane_port: int = 8443
    #: Where HTTPS publish (devices' ``POST /topics/<topic>`` over mutual TLS) listens; port 0 turns it off.
    https_publish_host: str = "0.0.0.0"  # noqa: S104 - devices connect over the network
    https_publish_port: int = 8444
    #: ``s3://bucket/prefix``; empty means ``data_dir/artifacts``.
    artifact_store: str = ""
    artifact_store_endpoint_url: str | None = None
    #: The MQTT filters whose messages are stored as telemetry (besides stream exports).
    telemetry_topic_filters: tuple[str, ...] = TELEMETRY_TOPIC_FILTERS
    #: How often telemetry retention is enforced, and the age limit of streams without a retention of their own.
    telemetry_retention_interval_seconds: float = 60.0
    telemetry_default_max_age_seconds: int | None = None

    def __post_init__(self) -> None:
        for name in ("api_port", "mqtt_port", "data_plane_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise CloudStartError(f"Option {name!r} is invalid: port {port} is not between 1 and 65535")
        if not 0 <= self.https_publish_port <= 65535:
            raise CloudStartError(
                f"Option 'https_publish_port' is invalid: port {self.https_publish_port} is not between 0 (off)"
                " and 65535"
            )
        if self.broker == "external":
            if self.broker_url is None:
                raise CloudStartError("Option 'broker_url' is required with an external broker")
            _broker_endpoint("broker_url", self.broker_url)
            worker = _broker_endpoint("broker_worker_url", self.broker_worker_url or self.broker_url)
            if self.broker_password is not None and self.broker_username is None:
                raise CloudStartError("Option 'broker_password' is set without 'broker_username'")
            if self.broker_ca_file is not None:
                if not worker.tls:
                    raise CloudStartError(
                        f"Option 'broker_ca_file' is only for TLS, and the workers connect to {worker.url}"
                    )
                if not self.broker_ca_file.is_file():
                    raise CloudStartError(
                        f"Option 'broker_ca_file' is invalid: {self.broker_ca_file} is not a file"
                    )
            return
        for name in (
            "broker_url",
            "broker_worker_url",
            "broker_username",
            "broker_password",
            "broker_ca_file",
        ):
            if getattr(self, name) is not None:
                raise CloudStartError(
                    f"Option {name!r} is only for an external broker (broker='external'); "
                    "the managed broker listens on mqtt_port"
                )


@dataclass(frozen=True)
class CloudEndpoints:
    """Where a prepared cloud can be reached; written to ``cloud.json``."""

    api_url: str
    mqtt_endpoint: str
    broker: BrokerMode
    ca_file: Path
    admin_token_file: Path
    #: The HTTPS base URL of the artifact data plane.
    data_plane_url: str = ""
    #: The HTTPS base URL devices publish to (``<url>/topics/<topic>``); empty when HTTPS publish is off.
    https_publish_url: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "apiUrl": self.api_url,
            "dataPlaneUrl": self.data_plane_url,
            "httpsPublishUrl": self.https_publish_url,
            "mqttEndpoint": self.mqtt_endpoint,
            "broker": self.broker,
            "caFile": str(self.ca_file),
            "adminTokenFile": str(self.admin_token_file),
        }


@dataclass(frozen=True)
class PreparedCloud:
    """A data directory ready to serve: settings, where things are, and the broker's settings if managed."""

    settings: CloudSettings
    endpoints: CloudEndpoints
    broker: BrokerSettings | None
    #: The admin token's secret on the first start only (to print once); ``None`` afterwards.
    admin_token: str | None
    #: How every cloud worker connects to the broker, managed or external (see :mod:`.broker.connection`).
    worker_connection: BrokerConnection
    #: The artifact data plane's listener, TLS files and signing key directory.
    data_plane: DataPlaneSettings | None = None
    #: HTTPS publish's listener and TLS files; None when it is off.
    https_publish: HttpsPublishSettings | None = None


def _broker_endpoint(option: str, url: str) -> BrokerEndpoint:
    try:
        return BrokerEndpoint.parse(url, field_name=option)
    except BrokerConfigError as exc:
        raise CloudStartError(f"Option {option!r} is invalid: {exc.problem}") from None


def _write_private(path: Path, text: str) -> None:
    write_file_atomically(path, text, mode=0o600)


def server_names() -> list[str]:
    """The names the broker's certificate is valid for: localhost, 127.0.0.1 and this host's name."""
    names = ["localhost", "127.0.0.1"]
    for name in (socket.gethostname(), socket.getfqdn()):
        if name not in names and _DNS_LABELS.match(name) and len(name) <= 64:
            names.append(name)
    return names


def _certificate_names(certificate_pem: str) -> set[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    addresses = {str(address) for address in names.get_values_for_type(x509.IPAddress)}
    return set(names.get_values_for_type(x509.DNSName)) | addresses


def _ensure_server_certificate(
    ca: CertificateAuthority, directory: Path, names: list[str]
) -> tuple[Path, Path]:
    """The broker's TLS certificate for ``names`` and its key in ``directory``, issued by ``ca`` unless one
    valid for all of them is already there. Blocks."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    certificate_file, key_file = directory / "server.pem", directory / "server.key"
    if certificate_file.exists() and key_file.exists():
        with contextlib.suppress(EdgewiseError, ValueError):
            pem = certificate_file.read_text(encoding="ascii")
            ca.verify(pem)
            if set(names) <= _certificate_names(pem):
                return certificate_file, key_file
        logger.info("broker-certificate-renewed path=%s names=%s", certificate_file, ",".join(names))
    issued, key_pem = ca.server_certificate(names)
    _write_private(key_file, key_pem)
    write_file_atomically(certificate_file, issued.certificate_pem, mode=0o644)
    return certificate_file, key_file


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is reached through a real name
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


#: Settings ``cloud up`` has no option for: each comes from its ``EDGEWISE_CLOUD_<NAME>`` variable when set.
ENVIRONMENT_SETTINGS = (
    "dataset_max_rows",
    "dataset_file_max_bytes",
    "training_concurrency",
    "training_ray_address",
    "mlflow_tracking_uri",
    "mlflow_artifact_location",
    "logs_max_age_seconds",
    "logs_retention_interval_seconds",
)


def _settings_from_environment() -> dict[str, str]:
    variables = {name: ENV_PREFIX + name.upper() for name in ENVIRONMENT_SETTINGS}
    return {name: os.environ[variable] for name, variable in variables.items() if variable in os.environ}


def prepare(options: ServerOptions) -> PreparedCloud:
    """Create or check everything in the data directory that serving needs. Blocks; idempotent.

    Raises:
        EdgewiseError: the CA is incomplete, or a CA or certificate cannot be loaded or issued.
    """
    first = initialize(
        options.data_dir,
        **_settings_from_environment(),
        database_url=options.database_url,
        api_host=options.api_host,
        api_port=options.api_port,
        artifact_store=options.artifact_store,
        artifact_store_endpoint_url=options.artifact_store_endpoint_url,
        telemetry_topic_filters=options.telemetry_topic_filters,
        telemetry_retention_interval_seconds=options.telemetry_retention_interval_seconds,
        telemetry_default_max_age_seconds=options.telemetry_default_max_age_seconds,
    )
    settings = first.settings
    ca = load_or_create_ca(settings.data_dir)
    model_signing.load_or_create(settings.data_dir)
    ca_file = settings.data_dir / "ca" / CA_CERTIFICATE_FILE
    broker: BrokerSettings | None = None
    if options.broker == "managed":
        broker_dir = settings.data_dir / "broker"
        certificate_file, key_file = _ensure_server_certificate(ca, broker_dir, server_names())
        broker = BrokerSettings(
            data_dir=broker_dir,
            devices=DeviceListenerSettings(
                port=options.mqtt_port,
                cafile=ca_file,
                certfile=certificate_file,
                keyfile=key_file,
                crlfile=broker_dir / CRL_FILE,
            ),
            workers=WorkerListenerSettings.generate(_free_loopback_port()),
            # Started as root, Mosquitto would switch to the 'mosquitto' account, which cannot read the
            # 0700 data directory; it stays the account that owns the data instead.
            run_as_user=getpass.getuser() if os.geteuid() == 0 else None,
        )
        mqtt_endpoint = f"mqtts://{_url_host('0.0.0.0')}:{options.mqtt_port}"  # noqa: S104
        assert broker.workers is not None
        worker_connection = BrokerConnection.for_listener(broker.workers)
    else:
        mqtt_endpoint, worker_connection = _external_broker(
            options, ca, ca_file, settings.data_dir / "broker"
        )
        ensure_hook_token(settings.data_dir)
    data_plane = _data_plane(options, ca, settings.data_dir / "dataplane")
    https_publish = (
        _https_publish(
            options, ca, ca_file, settings.data_dir / "https-publish", settings.stream_upload_max_bytes
        )
        if options.https_publish_port
        else None
    )
    endpoints = CloudEndpoints(
        data_plane_url=data_plane.url,
        https_publish_url=""
        if https_publish is None
        else f"https://{_url_host(options.https_publish_host)}:{options.https_publish_port}",
        api_url=f"http://{_url_host(options.api_host)}:{options.api_port}",
        mqtt_endpoint=mqtt_endpoint,
        broker=options.broker,
        ca_file=ca_file,
        admin_token_file=settings.admin_token_file,
    )
    write_file_atomically(
        settings.data_dir / ENDPOINTS_FILE, json.dumps(endpoints.to_json(), indent=2) + "\n", mode=0o644
    )
    return PreparedCloud(
        settings,
        endpoints,
        broker,
        first.admin_token,
        worker_connection,
        data_plane=data_plane,
        https_publish=https_publish,
    )


def _data_plane(options: ServerOptions, ca: CertificateAuthority, directory: Path) -> DataPlaneSettings:
    """The data plane's settings, with a server certificate from ``ca`` for its names. Blocks."""
    names = server_names()
    if options.data_plane_host not in ("0.0.0.0", "::", *names):  # noqa: S104 - wildcards have no name
        names.append(options.data_plane_host)
    certificate_file, key_file = _ensure_server_certificate(ca, directory, names)
    return DataPlaneSettings(
        host=options.data_plane_host,
        port=options.data_plane_port,
        url=f"https://{_url_host(options.data_plane_host)}:{options.data_plane_port}",
        certfile=certificate_file,
        keyfile=key_file,
        key_dir=directory,
    )


def _https_publish(
    options: ServerOptions, ca: CertificateAuthority, ca_file: Path, directory: Path, max_object_bytes: int
) -> HttpsPublishSettings:
    """HTTPS publish's settings, with a server certificate from ``ca`` for its names; client certificates must
    chain to ``ca_file``. Blocks."""
    names = server_names()
    if options.https_publish_host not in ("0.0.0.0", "::", *names):  # noqa: S104 - wildcards have no name
        names.append(options.https_publish_host)
    certificate_file, key_file = _ensure_server_certificate(ca, directory, names)
    return HttpsPublishSettings(
        host=options.https_publish_host,
        port=options.https_publish_port,
        cafile=ca_file,
        certfile=certificate_file,
        keyfile=key_file,
        max_object_bytes=max_object_bytes,
    )


def _external_broker(
    options: ServerOptions, ca: CertificateAuthority, ca_file: Path, directory: Path
) -> tuple[str, BrokerConnection]:
    """The devices' endpoint and the workers' connection of an external broker. Blocks.

    Devices verify the broker with the cloud's CA (their ``root-ca.pem``), so for a TLS endpoint a server
    certificate from that CA, for the broker's host names, is left in ``directory`` to install on the broker.
    """
    assert options.broker_url is not None
    devices = BrokerEndpoint.parse(options.broker_url)
    worker_url = options.broker_worker_url or options.broker_url
    workers = BrokerEndpoint.parse(worker_url)
    names = list(dict.fromkeys(endpoint.host for endpoint in (devices, workers) if endpoint.tls))
    if names:
        _ensure_server_certificate(ca, directory, names)
    if not devices.tls:
        logger.warning("broker-without-tls url=%s; devices would connect without TLS", devices.url)
    connection = BrokerConnection.from_url(
        worker_url,
        username=options.broker_username,
        password=options.broker_password,
        ca_file=(options.broker_ca_file or ca_file) if workers.tls else None,
    )
    return devices.url, connection
