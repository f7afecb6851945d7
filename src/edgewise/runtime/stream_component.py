"""The built-in ``aws.greengrass.StreamManager``: runs the stream store and its server while it is deployed.

The component is built in (:mod:`edgewise.aws_components`): its lifecycle never runs; instead, while the
services tree holds it, :class:`StreamComponent` serves the stream manager SDK's protocol with the component's
configuration, in Greengrass's keys (:func:`parse_stream_settings`). A configuration change restarts the server
with the new settings; removing the component stops it. A configuration value that cannot be used is logged
naming its key, and whatever ran before keeps running (nothing, on a first deployment): the runtime never fails
because of it.

A deployment that brings stream manager and a component using it starts both in one reconcile. So that the
component finds the port open, the port is bound the moment the services tree gains stream manager (the store
tells its subscribers synchronously, before the kernel reconciles): the component's connection waits in the
listen backlog until the server, started on the event loop just after, takes the socket over. Greengrass gets
the same from its dependency order, which a built-in component does not go through here.

The stream store and server (and cbor2 with them) are imported only once the component is deployed, so a
runtime without it keeps its idle memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edgewise.errors import EdgewiseError

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink
    from edgewise.runtime.config import ConfigChange, ConfigStore
    from edgewise.runtime.ipc.auth import TokenTable
    from edgewise.runtime.paths import RootPaths
    from edgewise.runtime.streams import StreamStore
    from edgewise.runtime.streams.export import ObjectSender, StreamExportService, TelemetryChannel
    from edgewise.runtime.streams.server import StreamServer

logger = logging.getLogger(__name__)

STREAM_MANAGER: Final = "aws.greengrass.StreamManager"
SERVER_PORT: Final = "STREAM_MANAGER_SERVER_PORT"
STORE_ROOT_DIR: Final = "STREAM_MANAGER_STORE_ROOT_DIR"
AUTHENTICATE_CLIENT: Final = "STREAM_MANAGER_AUTHENTICATE_CLIENT"
LOG_LEVEL: Final = "LOG_LEVEL"
#: The exports' shared bandwidth limit (bytes per second; unset: none) and how many batches are sent at once.
MAX_BANDWIDTH: Final = "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH"
THREAD_POOL_SIZE: Final = "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE"
#: Greengrass's exporter tuning that has no use here (an S3 export task's file goes up in one streamed request,
#: not in parts); accepted so that its deployments apply.
EXPORTER_KEYS: Final = ("STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES",)
DEFAULT_THREAD_POOL_SIZE: Final = 5
_MAX_THREAD_POOL_SIZE: Final = 1000
#: Keys of Greengrass's Java process that mean nothing here.
IGNORED_KEYS: Final = ("JVM_ARGS", "STREAM_MANAGER_THREAD_POOL_SIZE")
DEFAULT_PORT: Final = 8088
#: How often streams drop their segments past their time to live, when no append or read does it first.
DEFAULT_EXPIRY_INTERVAL: Final = 60.0
#: The SDK's log levels (Greengrass's Java names) → Python's.
_LOG_LEVELS: Final[Mapping[str, int]] = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}
_MAX_PORT: Final = 65535
# Who a client is when client authentication is off and its token names no component.
_UNAUTHENTICATED_CLIENT: Final = "unauthenticated client"
_STREAMS_LOGGER: Final = "edgewise.runtime.streams"
#: The interface the server listens on: components run on this device.
_HOST: Final = "127.0.0.1"


class StreamConfigurationError(EdgewiseError):
    """A value of the stream manager's configuration that cannot be used; ``key`` names it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(" ".join(part for part in (STREAM_MANAGER, "configuration", key, problem) if part))
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class StreamSettings:
    """What the stream server runs with; a change of any field restarts it."""

    port: int = DEFAULT_PORT
    store_root: Path = Path()
    authenticate_client: bool = True
    log_level: int = logging.INFO
    #: Bytes per second all exports together may send; None: no limit.
    max_bandwidth: int | None = None
    #: Export batches sent at once.
    exporter_threads: int = DEFAULT_THREAD_POOL_SIZE


def parse_stream_settings(configuration: Any, work_dir: Path) -> StreamSettings:
    """The settings of a configuration in Greengrass's keys (strings such as ``"8088"`` and ``"true"``, as
    Greengrass's recipe has them, or plain numbers and booleans). A relative ``STREAM_MANAGER_STORE_ROOT_DIR``
    (Greengrass's default is ``.``) is taken from ``work_dir``, the component's work directory.

    Raises:
        StreamConfigurationError: a value that cannot be used, naming its key.
    """
    if configuration is None:
        configuration = {}
    if not isinstance(configuration, Mapping):
        raise StreamConfigurationError("", f"must be an object, not {type(configuration).__name__}")
    root = _text(configuration, STORE_ROOT_DIR, ".")
    if not root:
        raise StreamConfigurationError(STORE_ROOT_DIR, "must not be empty")
    if "\0" in root:
        raise StreamConfigurationError(STORE_ROOT_DIR, "must not contain a NUL character")
    level_name = _text(configuration, LOG_LEVEL, "INFO").upper()
    if level_name not in _LOG_LEVELS:
        raise StreamConfigurationError(
            LOG_LEVEL, f"must be one of {', '.join(_LOG_LEVELS)}, not {level_name!r}"
        )
    return StreamSettings(
        port=_port(configuration.get(SERVER_PORT, DEFAULT_PORT)),
        store_root=work_dir / root,
        authenticate_client=_flag(configuration.get(AUTHENTICATE_CLIENT, True), AUTHENTICATE_CLIENT),
        log_level=_LOG_LEVELS[level_name],
        max_bandwidth=_positive(configuration.get(MAX_BANDWIDTH), MAX_BANDWIDTH, 2**63 - 1),
        exporter_threads=_positive(
            configuration.get(THREAD_POOL_SIZE), THREAD_POOL_SIZE, _MAX_THREAD_POOL_SIZE
        )
        or DEFAULT_THREAD_POOL_SIZE,
    )


def _text(configuration: Mapping[str, Any], key: str, default: str) -> str:
    value = configuration.get(key, default)
    if not isinstance(value, str):
        raise StreamConfigurationError(key, f"must be a string, not {value!r}")
    return value.strip()


def _port(value: object) -> int:
    port: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and value.strip().isdecimal():
        port = int(value.strip())
    if port is None or not 0 <= port <= _MAX_PORT:
        raise StreamConfigurationError(
            SERVER_PORT, f"must be a port number from 0 to {_MAX_PORT}, not {value!r}"
        )
    return port


def _positive(value: object, key: str, maximum: int) -> int | None:
    """A positive integer (or its digits as text); None when unset or empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdecimal():
        number = int(value.strip())
    if number is None or not 1 <= number <= maximum:
        raise StreamConfigurationError(key, f"must be a whole number from 1 to {maximum}, not {value!r}")
    return number


def _flag(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise StreamConfigurationError(key, f"must be true or false, not {value!r}")


class _RunningServer:
    """One stream store, its exports and its server, started together and closed together."""

    def __init__(
        self, settings: StreamSettings, store: StreamStore, exports: StreamExportService, server: StreamServer
    ) -> None:
        self.settings = settings
        self.store = store
        self.exports = exports
        self.server = server

    async def close(self) -> None:
        try:
            await self.server.close()
        finally:
            try:
                await self.exports.close()
            finally:
                await self.store.close()


class StreamComponent:
    """Follows ``aws.greengrass.StreamManager`` in the services tree and runs its stream server.

    Must be used from the event loop thread: :meth:`start` serves the current tree before it returns (so that
    components started after it find the server listening); :meth:`close` stops following and stops the server.
    """

    def __init__(
        self,
        store: ConfigStore,
        paths: RootPaths,
        tokens: TokenTable,
        *,
        cloud: CloudLink | None = None,
        thing: str = "",
        expiry_interval: float = DEFAULT_EXPIRY_INTERVAL,
    ) -> None:
        if expiry_interval <= 0:
            raise ValueError(f"expiry_interval must be positive, got {expiry_interval}")
        self._store = store
        self._paths = paths
        self._tokens = tokens
        self._cloud = cloud
        self._thing = thing
        self._expiry_interval = expiry_interval
        self._running: _RunningServer | None = None
        #: The last configuration seen, valid or not, so that an unchanged bad one is reported only once.
        self._seen: Any = None
        self._changed = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: A listening socket bound ahead of the server that will take it over (see the module docstring).
        self._bound: socket.socket | None = None

    @property
    def port(self) -> int | None:
        """The port the stream server listens on, or None when none runs."""
        return None if self._running is None else self._running.server.port

    def environment(self) -> dict[str, str]:
        """What a component's SDK reads to find the server: its port, while the component is deployed (the
        configured one until the server is bound; nothing for a port 0 the server has not bound yet)."""
        port = self.port
        if port is None and self._bound is not None:
            port = self._bound.getsockname()[1]
        if port is None and self._store.contains(("services", STREAM_MANAGER)):
            try:
                port = parse_stream_settings(self._configuration(), self._work_dir).port or None
            except StreamConfigurationError:
                port = None
        return {} if port is None else {SERVER_PORT: str(port)}

    async def start(self) -> None:
        """Serve what the services tree holds now, then follow its changes."""
        if self._follower is not None:
            raise RuntimeError("The stream component is already started")
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def changed(_: ConfigChange) -> None:
            # Store changes are delivered on the thread that made them; the follower runs on the loop.
            if threading.get_ident() == loop_thread:
                self._bind_early()
            loop.call_soon_threadsafe(self._changed.set)

        self._unsubscribe = self._store.subscribe(("services", STREAM_MANAGER), changed)
        await self._apply()
        self._follower = asyncio.create_task(self._follow(), name="stream-component")

    async def close(self) -> None:
        """Stop following the services tree and stop the server."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        self._release_bound()
        await self._stop()

    def _bind_early(self) -> None:
        """Bind the configured port now if no server runs yet; the follower reports whatever fails here."""
        if self._running is not None or self._bound is not None:
            return
        if not self._store.contains(("services", STREAM_MANAGER)):
            return
        try:
            settings = parse_stream_settings(self._configuration(), self._work_dir)
            self._bound = socket.create_server((_HOST, settings.port))
        except (StreamConfigurationError, OSError):
            return

    def _take_bound(self, port: int) -> socket.socket | None:
        """The socket bound ahead for ``port`` (any port for 0), or None; a socket for another port is closed."""
        bound, self._bound = self._bound, None
        if bound is not None and port not in (0, bound.getsockname()[1]):
            bound.close()
            return None
        return bound

    @property
    def _work_dir(self) -> Path:
        return self._paths.component_work(STREAM_MANAGER)

    def _configuration(self) -> Any:
        return self._store.get(("services", STREAM_MANAGER, "configuration"))

    async def _follow(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._expiry_interval):
                    await self._changed.wait()
            except TimeoutError:
                await self._remove_expired()
                continue
            await self._apply()

    async def _apply(self) -> None:
        try:
            await self._apply_tree()
        except Exception:
            # Whatever goes wrong with stream manager is logged: it must not stop the runtime nor the following.
            logger.exception("%s could not apply its configuration", STREAM_MANAGER)

    async def _apply_tree(self) -> None:
        """Make the server match the services tree: run, restart or stop it."""
        self._changed.clear()
        if not self._store.contains(("services", STREAM_MANAGER)):
            self._seen = None
            self._release_bound()
            await self._stop()
            return
        configuration = self._configuration()
        if configuration == self._seen and self._running is not None:
            return
        self._seen = configuration
        try:
            settings = parse_stream_settings(configuration, self._work_dir)
        except StreamConfigurationError as error:
            kept = "the running server keeps its settings" if self._running else "no stream server runs"
            logger.error("%s; %s", error, kept)
            return
        for key in EXPORTER_KEYS:
            if configuration.get(key) not in (None, ""):
                logger.info(
                    "%s %s is accepted but unused: S3 export tasks upload in one streamed request",
                    STREAM_MANAGER,
                    key,
                )
        previous = self._running.settings if self._running is not None else None
        if settings == previous:
            return
        await self._stop()
        if await self._run(settings) or previous is None:
            return
        logger.error("%s goes back to its previous settings", STREAM_MANAGER)
        await self._run(previous)

    async def _run(self, settings: StreamSettings) -> bool:
        """Open the store and start the server; False (logged) when either fails."""
        # Imported here: cbor2 and the stream store load only on a device that deploys stream manager.
        from edgewise.runtime.streams import StreamError, StreamStore
        from edgewise.runtime.streams.export import ExportScheduler, StreamExportService
        from edgewise.runtime.streams.server import StreamServer

        try:
            store = await StreamStore.open(settings.store_root)
        except (OSError, StreamError) as error:
            logger.error(
                "%s cannot open its stream store at %s: %s", STREAM_MANAGER, settings.store_root, error
            )
            self._release_bound()  # nothing would ever accept what connects to it
            return False
        scheduler = ExportScheduler(
            max_bandwidth=settings.max_bandwidth, concurrency=settings.exporter_threads
        )
        exports = StreamExportService(
            store,
            channel=self._channel(),
            objects=await self._objects(),
            refused_files=self._refused_files(),
            scheduler=scheduler,
        )
        await exports.start()
        sock = self._take_bound(settings.port)
        server = StreamServer(
            exports,
            authenticate=self._authenticator(settings.authenticate_client),
            host=_HOST,
            port=settings.port,
            sock=sock,
        )
        try:
            await server.start()
        except OSError as error:
            if sock is not None:
                sock.close()
            logger.error("%s cannot listen on port %d: %s", STREAM_MANAGER, settings.port, error)
            await exports.close()
            await store.close()
            return False
        self._running = _RunningServer(settings, store, exports, server)
        logging.getLogger(_STREAMS_LOGGER).setLevel(settings.log_level)
        logger.info(
            "%s serves streams under %s on port %d (client authentication %s)",
            STREAM_MANAGER,
            settings.store_root,
            server.port,
            "on" if settings.authenticate_client else "off",
        )
        return True

    def _channel(self) -> TelemetryChannel:
        """Where exports go: the Edgewise cloud over the cloud link, or nowhere yet on a device without one."""
        from edgewise.runtime.streams.export import CloudTelemetryChannel, UnavailableChannel

        if self._cloud is None:
            return UnavailableChannel(
                "This device has no cloud connection (no cloud section in its configuration file); "
                "the export waits and resumes once the runtime runs with one"
            )
        return CloudTelemetryChannel(self._cloud, self._thing)

    async def _objects(self) -> ObjectSender | None:
        """Where S3 export tasks upload: the cloud's HTTPS listener on the cloud link's host, with the device's
        certificate; None on a device without a cloud connection (or whose TLS files no longer load: logged)."""
        from edgewise.runtime.fleet.download import artifact_context
        from edgewise.runtime.streams.export import ObjectUploader

        if self._cloud is None:
            return None
        settings = self._cloud.settings
        try:
            context = await asyncio.to_thread(
                artifact_context, settings.root_ca, settings.certificate, settings.private_key
            )
        except OSError as error:  # ssl.SSLError included
            logger.error(
                "%s cannot upload S3 export tasks: its TLS files do not load: %s", STREAM_MANAGER, error
            )
            return None
        return ObjectUploader(settings.endpoint, settings.https_port, context)

    def _refused_files(self) -> tuple[Path, ...]:
        """What S3 export tasks may not upload: the runtime's root (configuration, keys, component secrets) and
        the device's private key wherever it is."""
        refused = [self._paths.root.resolve()]
        if self._cloud is not None:
            refused.append(self._cloud.settings.private_key.resolve())
        return tuple(refused)

    def _authenticator(self, required: bool) -> Callable[[str | None], str | None]:
        """Greengrass's rule: a client's auth token is the SVCUID of a running component."""
        tokens = self._tokens

        def authenticate(token: str | None) -> str | None:
            component = tokens.component_for(token) if token else None
            if component is None and not required:
                return _UNAUTHENTICATED_CLIENT
            return component

        return authenticate

    def _release_bound(self) -> None:
        if self._bound is not None:
            self._bound.close()
            self._bound = None

    async def _stop(self) -> None:
        running, self._running = self._running, None
        if running is None:
            return
        await running.close()
        logging.getLogger(_STREAMS_LOGGER).setLevel(logging.NOTSET)
        logger.info("%s stopped serving streams", STREAM_MANAGER)

    async def _remove_expired(self) -> None:
        if self._running is None:
            return
        try:
            await self._running.store.remove_expired()
        except Exception:
            # The next interval tries again; appends and reads also drop expired segments of their stream.
            logger.exception("%s could not drop expired stream segments", STREAM_MANAGER)
