"""The data plane's HTTPS listener: the artifact download app under its own uvicorn server.

``edgewise cloud up`` runs it beside the API, on ``--data-plane-port`` (8443 by default), with a server
certificate from the cloud's CA; devices already trust that CA for MQTT, so they need nothing more.

Usage::

    server = DataPlaneServer(settings, store)
    await server.start()
    url = server.signer.sign(sha256)
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from edgewise.cloud import listening
from edgewise.cloud.components.store import ArtifactStore
from edgewise.cloud.dataplane.app import create_data_plane_app
from edgewise.cloud.dataplane.signing import UrlSigner, load_or_create_signing_key
from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8443
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05


class DataPlaneStartError(EdgewiseError):
    """The data plane cannot start: its port is in use, or uvicorn stopped while starting."""


@dataclass(frozen=True)
class DataPlaneSettings:
    """Where the data plane listens, the URL devices reach it by, its TLS files and its key directory."""

    host: str
    port: int
    url: str
    certfile: Path
    keyfile: Path
    #: Holds the URL signing key (``signing.key``, 0600).
    key_dir: Path


def _bind(host: str, port: int) -> socket.socket:
    try:
        return listening.bind(host, port)
    except OSError as exc:
        raise DataPlaneStartError(f"The data plane cannot listen on {host}:{port}: {exc.strerror}") from exc


class DataPlaneServer:
    """Serves ``store``'s artifacts over HTTPS to URLs its :attr:`signer` signs."""

    def __init__(self, settings: DataPlaneSettings, store: ArtifactStore) -> None:
        self.settings = settings
        self.signer = UrlSigner(load_or_create_signing_key(settings.key_dir), settings.url)
        config = uvicorn.Config(
            create_data_plane_app(store, self.signer),
            ssl_certfile=str(settings.certfile),
            ssl_keyfile=str(settings.keyfile),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = listening.ServerWithoutSignals(config)
        self._socket: socket.socket | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen, and return once uvicorn serves.

        Raises:
            DataPlaneStartError: the port is in use, or the server did not start within 30 s.
        """
        self._socket = _bind(self.settings.host, self.settings.port)
        self._serving = asyncio.create_task(self._server.serve(sockets=[self._socket]), name="data-plane")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while not self._server.started:
            if self._serving.done() or loop.time() > deadline:
                failure = self._serving.exception() if self._serving.done() else None
                with contextlib.suppress(Exception):
                    await self.stop()
                reason = (
                    f"{type(failure).__name__}: {failure}" if failure else "it did not answer within 30 s"
                )
                raise DataPlaneStartError(f"The data plane did not start: {reason}") from failure
            await asyncio.sleep(_POLL_INTERVAL)
        logger.info("data-plane-ready url=%s", self.settings.url)

    async def stop(self) -> None:
        """Stop serving; downloads in flight get up to 10 s, then their connections are closed."""
        if self._serving is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._serving), _STOP_TIMEOUT)
            except TimeoutError:
                logger.warning("data-plane-stop-slow timeout_s=%.0f; closing connections", _STOP_TIMEOUT)
                self._server.force_exit = True
                await self._serving
            self._serving = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
