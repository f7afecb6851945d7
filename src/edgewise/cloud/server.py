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
(:class:`~edgewise.cloud.writes.NotifyOnWrite`, one wrapper around the API rather than a hook in each route:
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

With ``processes`` N > 1 (``edgewise cloud up --workers N``, PostgreSQL only) this process is process 0 of N: it
runs everything above, its device-facing workers (jobs, resolve, fleet status, shadows, logs) answering only the
things of partition 0 (:mod:`edgewise.cloud.partition`), and starts processes 1..N-1 for the other partitions
(:class:`~edgewise.cloud.processes.WorkerProcesses`, after its own workers and before the API, so it stops them
before the broker). A :class:`~edgewise.cloud.jobs.relay.JobEventRelay` in every process carries committed job
changes to the jobs engine here.

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

from starlette.types import ASGIApp

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
from edgewise.cloud.jobs.relay import JobEventRelay
from edgewise.cloud.logs import LogsRetentionWorker, LogsWorker
from edgewise.cloud.partition import Partition
from edgewise.cloud.preparation import PreparedCloud
from edgewise.cloud.processes import WorkerProcesses
from edgewise.cloud.provisioning.worker import ProvisioningWorker
from edgewise.cloud.rules.worker import RulesWorker
from edgewise.cloud.services import CloudServices
from edgewise.cloud.shadows.worker import ShadowWorker
from edgewise.cloud.telemetry.retention import RetentionWorker
from edgewise.cloud.telemetry.worker import TelemetryWorker
from edgewise.cloud.training.worker import TrainingWorker
from edgewise.cloud.worker_process import PartitionSettings
from edgewise.cloud.workers import (
    ApiServer,
    BrokerClient,
    CloudWorker,
    DataPlane,
    ManagedBroker,
    start_workers,
)
from edgewise.cloud.writes import AUTHORIZATION_PATHS, NotifyOnWrite

logger = logging.getLogger(__name__)


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


def _background_workers(
    cloud: PreparedCloud, services: CloudServices, api_app: ASGIApp, *, processes: int = 1
) -> tuple[list[CloudWorker], ASGIApp]:
    """The workers ``cloud`` runs besides the API, in start order, and ``api_app`` wrapped so that its writes
    notify them.

    The broker comes first and the jobs engine last (then the other processes, when ``processes`` > 1), so that,
    closed in reverse after the API, the other processes and the engine stop first and the broker last.
    """
    connection = cloud.worker_connection
    partition = Partition(0, processes) if processes > 1 else None
    workers: list[CloudWorker] = []
    sync: AuthorizationSync | None = None
    if cloud.broker is not None:
        broker = MosquittoBroker(cloud.broker)
        sync = AuthorizationSync(services.sessions, broker, services.certificate_authority)
        workers.append(ManagedBroker(broker, sync))
    if partition is not None:
        workers.append(JobEventRelay(services.sessions, cloud.settings.database_url))
    jobs_engine = JobEngine(services.sessions)

    def registered() -> None:
        if sync is not None:
            sync.notify()
        jobs_engine.wake()  # a thing the template put in a group joins its continuous jobs

    provisioning = ProvisioningWorker(
        services.sessions, services.certificate_authority, connection, on_registered=registered
    )
    workers.append(BrokerClient(provisioning, connection))
    fleet_status = FleetStatusWorker(services.sessions, connection, partition=partition)
    workers.append(BrokerClient(fleet_status, connection))
    ingest = TelemetryWorker(
        services.sessions,
        connection,
        topic_filters=cloud.settings.telemetry_topic_filters,
        flush_messages=cloud.settings.telemetry_flush_messages,
        flush_interval_ms=cloud.settings.telemetry_flush_interval_ms,
    )
    workers.append(BrokerClient(ingest, connection))
    workers.append(BrokerClient(LogsWorker(services.sessions, connection, partition=partition), connection))
    workers.append(
        LogsRetentionWorker(
            services.sessions,
            max_age_seconds=cloud.settings.logs_max_age_seconds,
            interval=cloud.settings.logs_retention_interval_seconds,
        )
    )
    if cloud.data_plane is not None:
        data_plane = DataPlaneServer(cloud.data_plane, services.artifact_store)
        resolver = ResolveWorker(services.sessions, data_plane.signer, connection, partition=partition)
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
    api_app = NotifyOnWrite(api_app, rules_worker.wake, paths=("/api/v1/rules",))
    shadows = ShadowWorker(services.sessions, connection, partition=partition)
    workers.append(BrokerClient(shadows, connection))
    api_app = NotifyOnWrite(api_app, shadows.wake, paths=("/api/v1/things/",))
    client_devices = ClientDevicesWorker(services.sessions, services.certificate_authority, connection)
    workers.append(BrokerClient(client_devices, connection))
    api_app = NotifyOnWrite(
        api_app,
        client_devices.wake,
        paths=("/api/v1/core-devices/", "/api/v1/things/", "/api/v1/certificates"),
    )
    training = TrainingWorker(services)
    workers.append(training)
    api_app = NotifyOnWrite(api_app, training.wake, paths=("/api/v1/training-jobs",))
    drift = DriftWorker(services, on_retraining=training.wake)
    workers.append(drift)
    api_app = NotifyOnWrite(api_app, drift.wake, paths=("/api/v1/models/",))
    jobs_worker = JobsWorker(
        services.sessions, connection, sealer=services.secret_sealer, partition=partition
    )
    workers.append(BrokerClient(jobs_worker, connection))
    workers.append(jobs_engine)
    if partition is not None:
        settings = PartitionSettings(
            cloud.settings.database_url,
            connection,
            None if cloud.data_plane is None else cloud.data_plane.url,
        )
        log_level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        workers.append(WorkerProcesses(cloud.settings.data_dir, processes, settings, log_level=log_level))
    if sync is not None:
        api_app = NotifyOnWrite(api_app, sync.notify, paths=AUTHORIZATION_PATHS)
    return workers, NotifyOnWrite(api_app, jobs_engine.wake)


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
    processes: int = 1,
) -> None:
    """Run the broker (when managed), the workers and the API until SIGTERM, SIGINT or ``stop`` is set; with
    ``processes`` > 1 (PostgreSQL only), as process 0 of that many (see the module docstring).

    ``on_ready`` is called once all of them answer. Stops the API first, then the workers, the broker last, each
    within its timeout; a part that fails to start stops those started before it the same way.
    Must be called from the main thread's event loop (it installs the signal handlers).

    Raises:
        CloudStartError: the API port is in use, the API did not start, a worker cannot reach the broker, or
            a worker process was not ready in time.
        BrokerStartError: Mosquitto did not start: another process holds one of its ports, another live cloud
            runs the broker of this data directory, or Mosquitto exited or did not listen in time.
        DataPlaneStartError: the data plane's port is in use, or it did not start.
    """
    settings = cloud.settings
    stop = stop or asyncio.Event()
    api_socket = _bind(settings.api_host, settings.api_port)
    services = CloudServices.open(settings)
    workers, api_app = _background_workers(
        cloud, services, create_app(settings, services=services), processes=processes
    )
    api = ApiServer(api_app, api_socket)
    with api_socket, _stop_on_signals(asyncio.get_running_loop(), stop):
        async with contextlib.AsyncExitStack() as running:
            await start_workers(running, [*workers, api])
            logger.info("cloud-ready api=%s mqtt=%s", cloud.endpoints.api_url, cloud.endpoints.mqtt_endpoint)
            if on_ready is not None:
                on_ready(cloud)
            await _wait_stop(stop, api)
    logger.info("cloud-stopped")
