"""Runs the whole cloud on one machine: prepares the data directory, then serves the API and the broker.

:func:`prepare` (blocking) does everything a first start needs and is idempotent afterwards: the data
directory, the database, the admin token, the certificate authority, the broker's server certificate and
``cloud.json`` (where the API and the MQTT endpoint are). :func:`serve` then runs, in the calling event loop,
the managed Mosquitto and the API (uvicorn), until SIGTERM or SIGINT; it stops the API first, so no request
is half-answered while the broker goes, then the broker.

The broker enforces what the store says through :class:`AuthorizationSync`: it renders the ACL and CRL before
Mosquitto starts, and the API notifies it after every successful write request (:class:`_NotifyOnWrite`, one
wrapper around the whole API rather than a hook in each route: any write may change authorization, a thing's
attributes too through dynamic groups, and a sync with nothing changed costs one reload). The provisioning
worker answers fleet provisioning requests on the broker's worker listener and notifies the sync too.

Data directory layout::

    DIR/edgewise.db          the SQLite store (unless --database-url)
    DIR/admin-token          the first admin API token (0600)
    DIR/ca/ca.pem, ca.key    the certificate authority (key 0600)
    DIR/broker/              Mosquitto's config, ACL, CRL, log, persistence, server.pem and server.key (0600)
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgewise.cloud.app import create_app, initialize
from edgewise.cloud.broker import (
    BrokerSettings,
    DeviceListenerSettings,
    MosquittoBroker,
    WorkerListenerSettings,
)
from edgewise.cloud.broker.config import write_file_atomically
from edgewise.cloud.broker.sync import AuthorizationSync
from edgewise.cloud.identity import CertificateAuthority
from edgewise.cloud.identity.service import CA_CERTIFICATE_FILE, load_or_create_ca
from edgewise.cloud.provisioning.worker import ProvisioningWorker
from edgewise.cloud.settings import CloudSettings
from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

BrokerMode = Literal["managed", "external"]
ENDPOINTS_FILE = "cloud.json"
CRL_FILE = "devices.crl"
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
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
    #: ``mqtts://host:port`` of the broker devices use; required with an external broker.
    broker_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("api_port", "mqtt_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise CloudStartError(f"Option {name!r} is invalid: port {port} is not between 1 and 65535")
        if self.broker == "external":
            if self.broker_url is None:
                raise CloudStartError("Option 'broker_url' is required with an external broker")
            _check_broker_url(self.broker_url)
        elif self.broker_url is not None:
            raise CloudStartError(
                f"Option 'broker_url' ({self.broker_url!r}) is only for an external broker; "
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

    def to_json(self) -> dict[str, str]:
        return {
            "apiUrl": self.api_url,
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


def _check_broker_url(url: str) -> None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise CloudStartError(f"Option 'broker_url' is invalid: {url!r} has a bad port ({exc})") from None
    if parts.scheme != "mqtts" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise CloudStartError(f"Option 'broker_url' is invalid: {url!r} is not of the form mqtts://host:port")


def _write_private(path: Path, text: str) -> None:
    write_file_atomically(path, text, mode=0o600)


def server_names() -> list[str]:
    """The names the broker's certificate is valid for: localhost, 127.0.0.1 and this host's name."""
    names = ["localhost", "127.0.0.1"]
    for name in (socket.gethostname(), socket.getfqdn()):
        if name not in names and _DNS_LABELS.match(name) and len(name) <= 64:
            names.append(name)
    return names


def _ensure_server_certificate(ca: CertificateAuthority, directory: Path) -> tuple[Path, Path]:
    """The broker's TLS certificate and key in ``directory``, issued by ``ca`` unless already there. Blocks."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    certificate_file, key_file = directory / "server.pem", directory / "server.key"
    if certificate_file.exists() and key_file.exists():
        with contextlib.suppress(EdgewiseError):
            ca.verify(certificate_file.read_text(encoding="ascii"))
            return certificate_file, key_file
        logger.info("broker-certificate-renewed path=%s", certificate_file)
    issued, key_pem = ca.server_certificate(server_names())
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
    )
    settings = first.settings
    ca = load_or_create_ca(settings.data_dir)
    ca_file = settings.data_dir / "ca" / CA_CERTIFICATE_FILE
    broker: BrokerSettings | None = None
    if options.broker == "managed":
        broker_dir = settings.data_dir / "broker"
        certificate_file, key_file = _ensure_server_certificate(ca, broker_dir)
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
    else:
        assert options.broker_url is not None
        mqtt_endpoint = options.broker_url
    endpoints = CloudEndpoints(
        api_url=f"http://{_url_host(options.api_host)}:{options.api_port}",
        mqtt_endpoint=mqtt_endpoint,
        broker=options.broker,
        ca_file=ca_file,
        admin_token_file=settings.admin_token_file,
    )
    write_file_atomically(
        settings.data_dir / ENDPOINTS_FILE, json.dumps(endpoints.to_json(), indent=2) + "\n", mode=0o644
    )
    return PreparedCloud(settings, endpoints, broker, first.admin_token)


def _bind(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound here so a port in use is our error, not uvicorn's exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CloudStartError(f"The API cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: :func:`serve` owns SIGTERM/SIGINT and stops in stages."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
    """ASGI wrapper calling ``notify`` after each write request the API answered with success."""

    def __init__(self, app: ASGIApp, notify: Callable[[], None]) -> None:
        self._app = app
        self._notify = notify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITE_METHODS:
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
        BrokerStartError: Mosquitto did not start.
    """
    settings = cloud.settings
    stop = stop or asyncio.Event()
    listening = _bind(settings.api_host, settings.api_port)
    broker = MosquittoBroker(cloud.broker) if cloud.broker is not None else None
    api_app = create_app(settings)
    sync: AuthorizationSync | None = None
    provisioning: ProvisioningWorker | None = None
    with listening, _stop_on_signals(asyncio.get_running_loop(), stop):
        if broker is not None:
            sync = AuthorizationSync(api_app.state.sessions, broker, api_app.state.certificate_authority)
            await sync.start()
        try:
            if broker is not None and sync is not None and broker.settings.workers is not None:
                provisioning = ProvisioningWorker(
                    api_app.state.sessions,
                    api_app.state.certificate_authority,
                    broker.settings.workers,
                    on_registered=sync.notify,
                )
                await provisioning.start()
            config = uvicorn.Config(
                api_app if sync is None else _NotifyOnWrite(api_app, sync.notify),
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
            api = _ApiServer(config)
            async with asyncio.TaskGroup() as tasks:
                serving = tasks.create_task(api.serve(sockets=[listening]), name="api")
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
            if provisioning is not None:
                await provisioning.close()
            if sync is not None:
                await sync.close()
            if broker is not None:
                logger.info("cloud-stopping stage=broker")
                await broker.stop()
    logger.info("cloud-stopped")
