"""Serves a prepared cloud on one machine: the API, the broker and the workers, until SIGTERM or SIGINT.

:func:`~edgewise.cloud.preparation.prepare` (blocking) readies the data directory; :func:`serve` then runs, in
the calling event loop, the managed Mosquitto, the workers and the API (uvicorn). Each is a
:class:`~edgewise.cloud.workers.CloudWorker` sharing one :class:`~edgewise.cloud.services.CloudServices`,
started in order on one exit stack: the API stops first, so no request is half-answered while the rest goes,
then the workers in the reverse order of their start, the broker last; a part that fails to start stops those
started before it the same way.

The broker enforces what the store says through :class:`AuthorizationSync`: it renders the ACL and CRL before
Mosquitto starts, and the API notifies it after every successful write request to things, thing groups,
certificates, policies and core devices (client-device associations grant a core its clients' shadow topics)
(:class:`_NotifyOnWrite`, one wrapper around the API rather than a hook in each route:
any of those writes may change authorization, a thing's attributes too through dynamic groups, and a sync with
nothing changed costs one reload). The provisioning
worker answers fleet provisioning requests on the broker's worker listener and notifies the sync too. The jobs
worker answers the AWS IoT Jobs topics and the jobs engine rolls jobs out; every successful API write also
wakes the engine, so a thing that joins a group reaches continuous jobs at once. The training worker runs
queued training jobs; a write to ``/training-jobs`` wakes it, so a job starts (or a cancel stops it) at once.
The drift worker runs due drift monitors; a write under ``/models/`` wakes it (a monitor set, an alias moved).
The client-devices worker answers core devices' trust-list, connectivity and CA requests; a write under
``/core-devices/``, ``/things/`` or ``/certificates`` wakes it to tell cores whose trust list changed.

With ``--broker external`` no Mosquitto runs and nothing is synced: the broker's authorization is its
operator's. Every worker connects with :attr:`PreparedCloud.worker_connection`, the one
:class:`~edgewise.cloud.broker.BrokerConnection` for both modes (the managed loopback listener, or the
external broker's URL, user name, password and CA).

Usage::

    cloud = prepare(ServerOptions(data_dir=Path("/var/lib/edgewise")))
    asyncio.run(serve(cloud))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgewise.cloud import listening
from edgewise.cloud.app import create_app
from edgewise.cloud.broker import AuthorizationSync, MosquittoBroker
from edgewise.cloud.client_devices.worker import ClientDevicesWorker
from edgewise.cloud.components.worker import ResolveWorker
from edgewise.cloud.dataplane import DataPlaneServer
from edgewise.cloud.drift.worker import DriftWorker
from edgewise.cloud.errors import CloudStartError
from edgewise.cloud.fleet.worker import FleetStatusWorker
from edgewise.cloud.https_publish import HttpsPublishWorker
from edgewise.cloud.jobs import JobEngine, JobsWorker
from edgewise.cloud.logs import LogsRetentionWorker, LogsWorker
from edgewise.cloud.preparation import PreparedCloud
from edgewise.cloud.provisioning.worker import ProvisioningWorker
from edgewise.cloud.rules.worker import RulesWorker
from edgewise.cloud.services import CloudServices
from edgewise.cloud.shadows.worker import ShadowWorker
from edgewise.cloud.telemetry.retention import RetentionWorker
from edgewise.cloud.telemetry.worker import TelemetryWorker
from edgewise.cloud.training.worker import TrainingWorker
from edgewise.cloud.workers import (
    ApiServer,
    BrokerClient,
    CloudWorker,
    DataPlane,
    ManagedBroker,
    start_workers,
)

logger = logging.getLogger(__name__)

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The API paths whose writes can change what a device may do: only these re-sync the broker (an artifact
#: upload, a published component, a job or a deployment never does).
_AUTHORIZATION_PATHS = tuple(
    f"/api/v1/{resource}"
    for resource in (
        "things",
        "thing-groups",
        "certificates",
        "claim-certificates",
        "policies",
        "core-devices",
    )
)


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


def _background_workers(
    cloud: PreparedCloud, services: CloudServices, api_app: ASGIApp
) -> tuple[list[CloudWorker], ASGIApp]:
    """The workers ``cloud`` runs besides the API, in start order, and ``api_app`` wrapped so that its writes
    notify them.

    The broker comes first and the jobs engine last, so that, closed in reverse after the API, the engine stops
    first and the broker last.
    """
    connection = cloud.worker_connection
    workers: list[CloudWorker] = []
    sync: AuthorizationSync | None = None
    if cloud.broker is not None:
        broker = MosquittoBroker(cloud.broker)
        sync = AuthorizationSync(services.sessions, broker, services.certificate_authority)
        workers.append(ManagedBroker(broker, sync))
    provisioning = ProvisioningWorker(
        services.sessions,
        services.certificate_authority,
        connection,
        on_registered=None if sync is None else sync.notify,
    )
    workers.append(BrokerClient(provisioning, connection))
    workers.append(BrokerClient(FleetStatusWorker(services.sessions, connection), connection))
    ingest = TelemetryWorker(
        services.sessions,
        connection,
        topic_filters=cloud.settings.telemetry_topic_filters,
        flush_messages=cloud.settings.telemetry_flush_messages,
        flush_interval_ms=cloud.settings.telemetry_flush_interval_ms,
    )
    workers.append(BrokerClient(ingest, connection))
    workers.append(BrokerClient(LogsWorker(services.sessions, connection), connection))
    workers.append(
        LogsRetentionWorker(
            services.sessions,
            max_age_seconds=cloud.settings.logs_max_age_seconds,
            interval=cloud.settings.logs_retention_interval_seconds,
        )
    )
    if cloud.data_plane is not None:
        data_plane = DataPlaneServer(cloud.data_plane, services.artifact_store)
        resolver = ResolveWorker(services.sessions, data_plane.signer, connection)
        workers += [DataPlane(data_plane), BrokerClient(resolver, connection)]
    if cloud.https_publish is not None:
        https_publish = HttpsPublishWorker(
            cloud.https_publish, services.sessions, connection, store=services.artifact_store
        )
        workers.append(BrokerClient(https_publish, connection))
    workers.append(
        RetentionWorker(
            services.sessions,
            interval=cloud.settings.telemetry_retention_interval_seconds,
            default_max_age_seconds=cloud.settings.telemetry_default_max_age_seconds,
        )
    )
    rules_worker = RulesWorker(services.sessions, connection)
    workers.append(BrokerClient(rules_worker, connection))
    api_app = _NotifyOnWrite(api_app, rules_worker.wake, paths=("/api/v1/rules",))
    shadows = ShadowWorker(services.sessions, connection)
    workers.append(BrokerClient(shadows, connection))
    api_app = _NotifyOnWrite(api_app, shadows.wake, paths=("/api/v1/things/",))
    client_devices = ClientDevicesWorker(services.sessions, services.certificate_authority, connection)
    workers.append(BrokerClient(client_devices, connection))
    api_app = _NotifyOnWrite(
        api_app,
        client_devices.wake,
        paths=("/api/v1/core-devices/", "/api/v1/things/", "/api/v1/certificates"),
    )
    training = TrainingWorker(services)
    workers.append(training)
    api_app = _NotifyOnWrite(api_app, training.wake, paths=("/api/v1/training-jobs",))
    drift = DriftWorker(services, on_retraining=training.wake)
    workers.append(drift)
    api_app = _NotifyOnWrite(api_app, drift.wake, paths=("/api/v1/models/",))
    jobs_worker = JobsWorker(services.sessions, connection, sealer=services.secret_sealer)
    workers.append(BrokerClient(jobs_worker, connection))
    jobs_engine = JobEngine(services.sessions)
    workers.append(jobs_engine)
    if sync is not None:
        api_app = _NotifyOnWrite(api_app, sync.notify, paths=_AUTHORIZATION_PATHS)
    return workers, _NotifyOnWrite(api_app, jobs_engine.wake)


async def _wait_stop(stop: asyncio.Event, api: ApiServer) -> None:
    """Return once ``stop`` is set or the API has stopped on its own."""
    waits = [
        asyncio.create_task(stop.wait(), name="stop-signal"),
        asyncio.create_task(api.wait_exited(), name="api-exited"),
    ]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def serve(
    cloud: PreparedCloud,
    *,
    on_ready: Callable[[PreparedCloud], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the broker (when managed), the workers and the API until SIGTERM, SIGINT or ``stop`` is set.

    ``on_ready`` is called once all of them answer. Stops the API first, then the workers, the broker last, each
    within its timeout; a part that fails to start stops those started before it the same way.
    Must be called from the main thread's event loop (it installs the signal handlers).

    Raises:
        CloudStartError: the API port is in use, the API did not start, or a worker cannot reach the broker.
        BrokerStartError: Mosquitto did not start: another process holds one of its ports, another live cloud
            runs the broker of this data directory, or Mosquitto exited or did not listen in time.
        DataPlaneStartError: the data plane's port is in use, or it did not start.
    """
    settings = cloud.settings
    stop = stop or asyncio.Event()
    api_socket = _bind(settings.api_host, settings.api_port)
    services = CloudServices.open(settings)
    workers, api_app = _background_workers(cloud, services, create_app(settings, services=services))
    api = ApiServer(api_app, api_socket)
    with api_socket, _stop_on_signals(asyncio.get_running_loop(), stop):
        async with contextlib.AsyncExitStack() as running:
            await start_workers(running, [*workers, api])
            logger.info("cloud-ready api=%s mqtt=%s", cloud.endpoints.api_url, cloud.endpoints.mqtt_endpoint)
            if on_ready is not None:
                on_ready(cloud)
            await _wait_stop(stop, api)
    logger.info("cloud-stopped")
