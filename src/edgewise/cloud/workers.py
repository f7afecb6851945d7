"""The cloud's background parts as one kind of thing, started in order and closed in reverse.

Every part :func:`edgewise.cloud.server.serve` runs (the managed broker with its authorization sync, the MQTT
workers, the data plane, the jobs engine, the API) is a :class:`CloudWorker`. :func:`start_workers` starts a
list of them on an :class:`~contextlib.AsyncExitStack`, so that leaving the stack closes them in the reverse
order, whether the cloud stops or a start fails half-way through the list.

The parts that are not workers by themselves become workers here: :class:`ManagedBroker` (Mosquitto behind its
authorization sync), :class:`BrokerClient` (an MQTT worker whose unreachable broker is a start error),
:class:`DataPlane` and :class:`ApiServer` (uvicorn on a socket bound beforehand).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable
from contextlib import AsyncExitStack
from typing import Protocol

import uvicorn
from starlette.types import ASGIApp

from edgewise.cloud import listening
from edgewise.cloud.broker import AuthorizationSync, BrokerConnection, MosquittoBroker
from edgewise.cloud.dataplane import DataPlaneServer
from edgewise.cloud.errors import CloudStartError

logger = logging.getLogger(__name__)

_API_START_TIMEOUT = 30.0
_API_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05


class CloudWorker(Protocol):
    """A background part of the cloud: started once, closed once.

    ``close`` must be safe after a ``start`` that failed or never ran: a start can fail half-way (connected to
    the broker, then a subscription refused), so a worker whose start failed is closed too.
    """

    @property
    def name(self) -> str:
        """What the cloud's logs call the worker."""
        ...

    async def start(self) -> None:
        """Return once the worker does its job."""
        ...

    async def close(self) -> None:
        """Stop doing it and release what it holds."""
        ...


async def start_workers(stack: AsyncExitStack, workers: Iterable[CloudWorker]) -> None:
    """Start ``workers`` one after the other; ``stack`` closes each in the reverse order when it exits.

    A worker's start error propagates as it is, once the stack has it: the failed worker and those started
    before it are closed (newest first) when the caller leaves the stack, and the workers after it never start.
    """
    for worker in workers:
        stack.push_async_callback(worker.close)
        try:
            await worker.start()
        except Exception:
            logger.error("cloud-worker-start-failed worker=%s", worker.name)
            raise
        logger.debug("cloud-worker-started worker=%s", worker.name)


class ManagedBroker:
    """Mosquitto with its authorization sync: the sync renders the ACL and CRL, then starts the broker; closing
    stops the sync, then the broker."""

    name = "broker"

    def __init__(self, broker: MosquittoBroker, sync: AuthorizationSync) -> None:
        self._broker = broker
        self._sync = sync

    async def start(self) -> None:
        await self._sync.start()

    async def close(self) -> None:
        await self._sync.close()
        logger.info("cloud-stopping stage=broker")
        await self._broker.stop()


class BrokerClient:
    """A worker that connects to the broker: a broker it cannot reach or verify is a start error naming it."""

    def __init__(self, worker: CloudWorker, connection: BrokerConnection) -> None:
        self._worker = worker
        self._connection = connection

    @property
    def name(self) -> str:
        return self._worker.name

    async def start(self) -> None:
        try:
            await self._worker.start()
        except OSError as exc:
            raise CloudStartError(
                f"A worker cannot connect to the broker at {self._connection.url}: {exc}"
            ) from exc

    async def close(self) -> None:
        await self._worker.close()


class DataPlane:
    """The data plane server as a worker (it stops rather than closes)."""

    name = "data-plane"

    def __init__(self, server: DataPlaneServer) -> None:
        self._server = server

    async def start(self) -> None:
        await self._server.start()

    async def close(self) -> None:
        await self._server.stop()


class ApiServer:
    """The API (uvicorn) on the socket :func:`~edgewise.cloud.server.serve` bound; closing lets requests under
    way finish first."""

    name = "api"

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        self._server = listening.ServerWithoutSignals(config)
        self._socket = sock
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Return once uvicorn serves.

        Raises:
            CloudStartError: uvicorn stopped while starting or did not start within 30 s.
        """
        serving = asyncio.create_task(self._server.serve(sockets=[self._socket]), name="api")
        try:
            await self._wait_started(serving)
        except BaseException:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            raise
        self._serving = serving

    async def wait_exited(self) -> None:
        """Return once uvicorn has stopped serving, on its own or closed."""
        if self._serving is not None:
            await asyncio.wait({self._serving})

    async def close(self) -> None:
        serving, self._serving = self._serving, None
        if serving is None:
            return
        logger.info("cloud-stopping stage=api")
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(serving), _API_STOP_TIMEOUT)
        except TimeoutError:
            logger.warning("api-stop-slow timeout_s=%.0f; closing connections", _API_STOP_TIMEOUT)
            self._server.force_exit = True
            await serving

    async def _wait_started(self, serving: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _API_START_TIMEOUT
        while not self._server.started:
            if serving.done():
                raise CloudStartError("The API stopped while starting; see the log above")
            if loop.time() > deadline:
                raise CloudStartError(f"The API did not start within {_API_START_TIMEOUT:.0f} s")
            await asyncio.sleep(_POLL_INTERVAL)
