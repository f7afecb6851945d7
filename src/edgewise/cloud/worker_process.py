"""One more cloud process: the device-facing workers for the things of one partition (``edgewise cloud worker``).

``edgewise cloud up --workers N`` runs everything in process 0 and starts processes 1..N-1 with
:class:`~edgewise.cloud.processes.WorkerProcesses`; each of them runs :func:`serve_partition`: the jobs, resolve,
fleet status, shadows and logs workers answering the things its :class:`~edgewise.cloud.partition.Partition`
owns, and the :class:`~edgewise.cloud.jobs.relay.JobEventRelay` that tells process 0's jobs engine what they
changed. What it needs besides the data directory (the database URL and the workers' broker connection, password
included) comes as JSON on its standard input (:class:`PartitionSettings`), never on the command line, where
every user of the machine could read it.

The data directory gives the keys the workers use: the job secrets key (``job-secrets.key``) and the data plane's
URL signing key (``dataplane/signing.key``); a worker on another machine needs copies of both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.components.worker import ResolveWorker
from edgewise.cloud.dataplane.signing import SIGNING_KEY_FILE, UrlSigner, load_or_create_signing_key
from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.errors import CloudStartError
from edgewise.cloud.fleet.worker import FleetStatusWorker
from edgewise.cloud.jobs.relay import JobEventRelay
from edgewise.cloud.jobs.secrets import KEY_FILE, SecretSealer
from edgewise.cloud.jobs.worker import JobsWorker
from edgewise.cloud.logs.worker import LogsWorker
from edgewise.cloud.partition import Partition
from edgewise.cloud.shadows.worker import ShadowWorker
from edgewise.cloud.workers import BrokerClient, CloudWorker, start_workers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionSettings:
    """What a worker process gets from process 0 on its standard input."""

    #: ``postgresql+psycopg://...``: several processes share one PostgreSQL database.
    database_url: str
    #: How the workers reach the broker (the managed broker's loopback listener, or an external broker).
    broker: BrokerConnection
    #: The data plane's base URL, which signed artifact URLs point to; None runs no resolve worker.
    data_plane_url: str | None

    def to_json(self) -> str:
        """The settings as one line of JSON (holds the broker password: never log it)."""
        broker = self.broker
        return json.dumps(
            {
                "databaseUrl": self.database_url,
                "dataPlaneUrl": self.data_plane_url,
                "broker": {
                    "host": broker.host,
                    "port": broker.port,
                    "username": broker.username,
                    "password": broker.password,
                    "tls": broker.tls,
                    "caFile": None if broker.ca_file is None else str(broker.ca_file),
                },
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PartitionSettings:
        """Settings from :meth:`to_json`'s JSON.

        Raises:
            ValueError: the text is not such JSON; the message names the field.
        """
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the worker settings are not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError("the worker settings are not a JSON object")
        database_url = _text(body, "databaseUrl")
        if not database_url.startswith("postgresql"):
            raise ValueError("worker setting 'databaseUrl' must be a postgresql+psycopg:// URL")
        data_plane_url = _optional_text(body, "dataPlaneUrl")
        broker = body.get("broker")
        if not isinstance(broker, dict):
            raise ValueError("worker setting 'broker' must be an object")
        port = broker.get("port")
        if not isinstance(port, int) or isinstance(port, bool):
            raise ValueError("worker setting 'broker.port' must be an integer")
        ca_file = _optional_text(broker, "caFile")
        try:
            connection = BrokerConnection(
                _text(broker, "host"),
                port,
                username=_optional_text(broker, "username"),
                password=_optional_text(broker, "password"),
                tls=broker.get("tls") is True,
                ca_file=None if ca_file is None else Path(ca_file),
            )
        except ValueError as exc:
            raise ValueError(f"worker setting 'broker' is invalid: {exc}") from None
        return cls(database_url, connection, data_plane_url)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"worker setting {name!r} must be a non-empty string")
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"worker setting {name!r} must be a string or null")
    return value


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise CloudStartError(
            f"{path} is missing: a worker process uses the data directory of the cloud it serves"
        )
    return path


def partition_workers(
    data_dir: Path, settings: PartitionSettings, partition: Partition, sessions: sessionmaker[Session]
) -> list[CloudWorker]:
    """The workers of one partition, in start order: the relay first, so every commit is relayed. Blocks
    (reads the keys).

    Raises:
        CloudStartError: a key file is missing from ``data_dir``.
    """
    connection = settings.broker
    _existing(data_dir / KEY_FILE)
    sealer = SecretSealer.load_or_create(data_dir)
    workers: list[CloudWorker] = [
        JobEventRelay(sessions, settings.database_url, listen=False),  # nothing here listens to others
        BrokerClient(FleetStatusWorker(sessions, connection, partition=partition), connection),
        BrokerClient(LogsWorker(sessions, connection, partition=partition), connection),
        BrokerClient(ShadowWorker(sessions, connection, partition=partition), connection),
    ]
    if settings.data_plane_url is not None:
        key_dir = data_dir / "dataplane"
        _existing(key_dir / SIGNING_KEY_FILE)
        signer = UrlSigner(load_or_create_signing_key(key_dir), settings.data_plane_url)
        resolver = ResolveWorker(sessions, signer, connection, partition=partition)
        workers.append(BrokerClient(resolver, connection))
    jobs = JobsWorker(sessions, connection, sealer=sealer, partition=partition)
    workers.append(BrokerClient(jobs, connection))
    return workers


async def serve_partition(
    data_dir: Path,
    settings: PartitionSettings,
    partition: Partition,
    *,
    on_ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``partition``'s workers until SIGTERM, SIGINT or ``stop``; ``on_ready`` once they all answer.

    Must be called from the main thread's event loop (it installs the signal handlers).

    Raises:
        CloudStartError: a key file is missing from ``data_dir``, the database or the broker cannot be reached.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    engine = create_database_engine(settings.database_url)
    signals = (signal.SIGTERM, signal.SIGINT)
    try:
        workers = partition_workers(data_dir, settings, partition, create_session_factory(engine))
        for number in signals:
            loop.add_signal_handler(number, stop.set)
        async with contextlib.AsyncExitStack() as running:
            await start_workers(running, workers)
            logger.info(
                "cloud-worker-process-ready process=%d processes=%d", partition.index, partition.count
            )
            if on_ready is not None:
                on_ready()
            await stop.wait()
            logger.info("cloud-worker-process-stopping process=%d", partition.index)
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
        engine.dispose()
