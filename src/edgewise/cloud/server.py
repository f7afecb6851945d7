"""Runs the whole cloud on one machine: prepares the data directory, then serves the API and the broker.

:func:`prepare` (blocking) does everything a first start needs and is idempotent afterwards: the data
directory, the database, the admin token, the certificate authority, the broker's server certificate and
``cloud.json`` (where the API and the MQTT endpoint are). :func:`serve` then runs, in the calling event loop,
the managed Mosquitto and the API (uvicorn), until SIGTERM or SIGINT; it stops the API first, so no request
is half-answered while the broker goes, then the broker.

The broker enforces what the store says through :class:`AuthorizationSync`: it renders the ACL and CRL before
Mosquitto starts, and the API notifies it after every successful write request to things, thing groups,
certificates and policies (:class:`_NotifyOnWrite`, one wrapper around the API rather than a hook in each route:
any of those writes may change authorization, a thing's attributes too through dynamic groups, and a sync with
nothing changed costs one reload). The provisioning
worker answers fleet provisioning requests on the broker's worker listener and notifies the sync too. The jobs
worker answers the AWS IoT Jobs topics and the jobs engine rolls jobs out; every successful API write also
wakes the engine, so a thing that joins a group reaches continuous jobs at once.

With ``--broker external`` no Mosquitto runs and nothing is synced: the broker's authorization is its
operator's. Every worker connects with :attr:`PreparedCloud.worker_connection`, the one
:class:`~edgewise.cloud.broker.BrokerConnection` for both modes (the managed loopback listener, or the
external broker's URL, user name, password and CA).

Data directory layout::

    DIR/edgewise.db          the SQLite store (unless --database-url)
    DIR/admin-token          the first admin API token (0600)
    DIR/ca/ca.pem, ca.key    the certificate authority (key 0600)
    DIR/broker/              Mosquitto's config, ACL, CRL, log, persistence, server.pem and server.key (0600),
                             and mosquitto.pid while it runs (a broker an earlier run left is stopped at start)
    DIR/dataplane/           the data plane's server.pem, server.key and URL signing.key (keys 0600)
    DIR/artifacts/           the artifact store (unless --artifact-store s3://...); DIR/uploads/ stages uploads
    DIR/cloud.json           the API URL, the MQTT endpoint and the CA file, for the CLI and for devices

Usage::

    cloud = prepare(ServerOptions(data_dir=Path("/var/lib/edgewise")))
    asyncio.run(serve(cloud))
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import uvicorn
from cryptography import x509
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgewise.cloud import listening
from edgewise.cloud.app import create_app, initialize
from edgewise.cloud.broker import (
    BrokerConfigError,
    BrokerConnection,
    BrokerEndpoint,
    BrokerSettings,
    DeviceListenerSettings,
    MosquittoBroker,
    WorkerListenerSettings,
)
from edgewise.cloud.broker.config import write_file_atomically
from edgewise.cloud.broker.sync import AuthorizationSync
from edgewise.cloud.components.worker import ResolveWorker
from edgewise.cloud.dataplane import DataPlaneServer, DataPlaneSettings
from edgewise.cloud.fleet.worker import FleetStatusWorker
from edgewise.cloud.identity import CertificateAuthority
from edgewise.cloud.identity.service import CA_CERTIFICATE_FILE, load_or_create_ca
from edgewise.cloud.jobs import JobEngine, JobsWorker
from edgewise.cloud.provisioning.worker import ProvisioningWorker
from edgewise.cloud.settings import CloudSettings
from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

BrokerMode = Literal["managed", "external"]
ENDPOINTS_FILE = "cloud.json"
CRL_FILE = "devices.crl"
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The API paths whose writes can change what a device may do: only these re-sync the broker (an artifact
#: upload, a published component, a job or a deployment never does).
_AUTHORIZATION_PATHS = tuple(
    f"/api/v1/{resource}"
    for resource in ("things", "thing-groups", "certificates", "claim-certificates", "policies")
)
_API_START_TIMEOUT = 30.0
_API_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05
_DNS_LABELS = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class CloudStartError(EdgewiseError):
    """The cloud cannot start: bad options, a port in use, or a data directory it cannot use."""


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
    #: ``s3://bucket/prefix``; empty means ``data_dir/artifacts``.
    artifact_store: str = ""
    artifact_store_endpoint_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("api_port", "mqtt_port", "data_plane_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise CloudStartError(f"Option {name!r} is invalid: port {port} is not between 1 and 65535")
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

    def to_json(self) -> dict[str, str]:
        return {
            "apiUrl": self.api_url,
            "dataPlaneUrl": self.data_plane_url,
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


def prepare(options: ServerOptions) -> PreparedCloud:
    """Create or check everything in the data directory that serving needs. Blocks; idempotent.

    Raises:
        EdgewiseError: the CA is incomplete, or a CA or certificate cannot be loaded or issued.
    """
    first = initialize(
        options.data_dir,
        database_url=options.database_url,
        api_host=options.api_host,
        api_port=options.api_port,
        artifact_store=options.artifact_store,
        artifact_store_endpoint_url=options.artifact_store_endpoint_url,
    )
    settings = first.settings
    ca = load_or_create_ca(settings.data_dir)
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
    data_plane = _data_plane(options, ca, settings.data_dir / "dataplane")
    endpoints = CloudEndpoints(
        data_plane_url=data_plane.url,
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
        settings, endpoints, broker, first.admin_token, worker_connection, data_plane=data_plane
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


def _bind(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound here so a port in use is our error, not uvicorn's exit."""
    try:
        return listening.bind(host, port)
    except OSError as exc:
        raise CloudStartError(f"The API cannot listen on {host}:{port}: {exc.strerror}") from exc


@contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        yield
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


class _NotifyOnWrite:
    """ASGI wrapper calling ``notify`` after each write request the API answered with success (only those
    under one of ``paths``, when given)."""

    def __init__(self, app: ASGIApp, notify: Callable[[], None], *, paths: tuple[str, ...] = ("/",)) -> None:
        self._app = app
        self._notify = notify
        self._paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _WRITE_METHODS
            or not str(scope["path"]).startswith(self._paths)
        ):
            await self._app(scope, receive, send)
            return
        statuses: list[int] = []

        async def send_recording_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        await self._app(scope, receive, send_recording_status)
        if statuses and statuses[0] < 400:
            self._notify()


async def _wait_api_started(api: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _API_START_TIMEOUT
    while not api.started:
        if serving.done():
            raise CloudStartError("The API stopped while starting; see the log above")
        if loop.time() > deadline:
            raise CloudStartError(f"The API did not start within {_API_START_TIMEOUT:.0f} s")
        await asyncio.sleep(_POLL_INTERVAL)


async def _start_worker(starting: Awaitable[None], connection: BrokerConnection) -> None:
    """Await a worker's start; a broker it cannot reach or verify is a start error naming the broker."""
    try:
        await starting
    except OSError as exc:
        raise CloudStartError(f"A worker cannot connect to the broker at {connection.url}: {exc}") from exc


async def serve(
    cloud: PreparedCloud,
    *,
    on_ready: Callable[[PreparedCloud], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the broker (when managed) and the API until SIGTERM, SIGINT or ``stop`` is set.

    ``on_ready`` is called once both answer. Stops the API, then the broker, each within its timeout.
    Must be called from the main thread's event loop (it installs the signal handlers).

    Raises:
        CloudStartError: the API port is in use or the API did not start.
        BrokerStartError: Mosquitto did not start: another process holds one of its ports, another live cloud
            runs the broker of this data directory, or Mosquitto exited or did not listen in time.
    """
    settings = cloud.settings
    stop = stop or asyncio.Event()
    api_socket = _bind(settings.api_host, settings.api_port)
    broker = MosquittoBroker(cloud.broker) if cloud.broker is not None else None
    api_app = create_app(settings)
    sync: AuthorizationSync | None = None
    provisioning: ProvisioningWorker | None = None
    fleet_status: FleetStatusWorker | None = None
    data_plane = DataPlaneServer(cloud.data_plane, api_app.state.artifact_store) if cloud.data_plane else None
    resolver: ResolveWorker | None = None
    jobs_worker: JobsWorker | None = None
    jobs_engine = JobEngine(api_app.state.sessions)
    with api_socket, _stop_on_signals(asyncio.get_running_loop(), stop):
        if broker is not None:
            sync = AuthorizationSync(api_app.state.sessions, broker, api_app.state.certificate_authority)
            await sync.start()
        try:
            provisioning = ProvisioningWorker(
                api_app.state.sessions,
                api_app.state.certificate_authority,
                cloud.worker_connection,
                on_registered=None if sync is None else sync.notify,
            )
            await _start_worker(provisioning.start(), cloud.worker_connection)
            fleet_status = FleetStatusWorker(api_app.state.sessions, cloud.worker_connection)
            await _start_worker(fleet_status.start(), cloud.worker_connection)
            jobs_worker = JobsWorker(
                api_app.state.sessions, cloud.worker_connection, sealer=api_app.state.secret_sealer
            )
            await _start_worker(jobs_worker.start(), cloud.worker_connection)
            await jobs_engine.start()
            if data_plane is not None:
                await data_plane.start()
                resolver = ResolveWorker(api_app.state.sessions, data_plane.signer, cloud.worker_connection)
                await _start_worker(resolver.start(), cloud.worker_connection)
            config = uvicorn.Config(
                _NotifyOnWrite(
                    api_app
                    if sync is None
                    else _NotifyOnWrite(api_app, sync.notify, paths=_AUTHORIZATION_PATHS),
                    jobs_engine.wake,
                ),
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
            api = listening.ServerWithoutSignals(config)
            async with asyncio.TaskGroup() as tasks:
                serving = tasks.create_task(api.serve(sockets=[api_socket]), name="api")
                await _wait_api_started(api, serving)
                logger.info(
                    "cloud-ready api=%s mqtt=%s", cloud.endpoints.api_url, cloud.endpoints.mqtt_endpoint
                )
                if on_ready is not None:
                    on_ready(cloud)
                stopping = tasks.create_task(stop.wait(), name="stop-signal")
                await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                logger.info("cloud-stopping stage=api")
                api.should_exit = True
                stopping.cancel()
                try:
                    await asyncio.wait_for(asyncio.shield(serving), _API_STOP_TIMEOUT)
                except TimeoutError:
                    logger.warning("api-stop-slow timeout_s=%.0f; closing connections", _API_STOP_TIMEOUT)
                    api.force_exit = True
        finally:
            await jobs_engine.close()
            if jobs_worker is not None:
                await jobs_worker.close()
            if resolver is not None:
                await resolver.close()
            if data_plane is not None:
                await data_plane.stop()
            if fleet_status is not None:
                await fleet_status.close()
            if provisioning is not None:
                await provisioning.close()
            if sync is not None:
                await sync.close()
            if broker is not None:
                logger.info("cloud-stopping stage=broker")
                await broker.stop()
    logger.info("cloud-stopped")
