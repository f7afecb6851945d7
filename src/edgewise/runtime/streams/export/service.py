"""The stream store as the protocol server sees it, with the exports of every stream running beside it.

:class:`StreamExportService` is the server's :class:`~edgewise.runtime.streams.server.StreamBackend`: it passes
every request to the :class:`StreamStore`, checks a definition's exports before the store takes it (an invalid
export config is refused with ``InvalidRequest`` naming its field), runs one :class:`StreamExporter` per export of
each stream — those loaded at start, created, updated (restarted when the exports changed) and deleted — and adds
their status to ``describe``. An ``s3TaskExecutor`` export runs an :class:`S3TaskExporter` instead, which uploads
through ``objects`` (without one, its tasks wait, with the reason in the export's status).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Final

from edgewise.runtime.streams.definition import Persistence, StoredMessage, StreamDefinition, StreamInfo
from edgewise.runtime.streams.errors import StreamClosedError, StreamError, StreamNotFoundError
from edgewise.runtime.streams.export.channel import ExportDeliveryError, TelemetryChannel
from edgewise.runtime.streams.export.checkpoints import CheckpointFile
from edgewise.runtime.streams.export.definitions import ExportConfig, ExportKind, parse_exports
from edgewise.runtime.streams.export.exporter import RetrySettings, StreamExporter
from edgewise.runtime.streams.export.http import HTTPChannel
from edgewise.runtime.streams.export.s3_tasks import S3TaskExporter
from edgewise.runtime.streams.export.scheduling import ExportClock, ExportScheduler
from edgewise.runtime.streams.export.uploader import ObjectSender, S3Task
from edgewise.runtime.streams.store import StreamStore, stream_directory_name

logger = logging.getLogger(__name__)

_TASK_PREFIX: Final = "stream-export"


@dataclasses.dataclass
class _Running:
    exporter: StreamExporter | S3TaskExporter
    task: asyncio.Task[None] | None


class StreamExportService:
    """Serves ``store`` and exports its streams. Must be used from the event loop; :meth:`start`, then
    :meth:`close` (before the store is closed)."""

    def __init__(
        self,
        store: StreamStore,
        *,
        channel: TelemetryChannel,
        objects: ObjectSender | None = None,
        refused_files: tuple[Path, ...] = (),
        scheduler: ExportScheduler | None = None,
        clock: ExportClock | None = None,
        retry: RetrySettings | None = None,
    ) -> None:
        self._store = store
        self._channel = channel
        self._objects = objects
        #: Directories and files S3 export tasks may not upload (the runtime's root: its keys and secrets).
        self._refused_files = refused_files
        self._clock = clock or ExportClock()
        self._scheduler = scheduler or ExportScheduler(clock=self._clock)
        self._retry = retry or RetrySettings()
        self._exports: dict[str, list[_Running]] = {}
        self._configs: dict[str, tuple[ExportConfig, ...]] = {}

    async def start(self) -> None:
        """Start the exports of every stream the store holds."""
        for name in self._store.names():
            definition = self._store.describe(name).definition
            try:
                configs = parse_exports(definition.export_definition)
            except StreamError as error:
                logger.error("Stream %r is not exported: its export definition is invalid: %s", name, error)
                continue
            await self._start_stream(definition, configs)

    async def close(self) -> None:
        """Stop every export (their checkpoints stay)."""
        for name in list(self._exports):
            await self._stop_stream(name)

    # -- the server's backend ------------------------------------------------------------------------------

    async def create(self, definition: StreamDefinition) -> None:
        configs = parse_exports(definition.export_definition)
        await self._store.create(definition)
        await self._start_stream(definition, configs)

    async def update(self, definition: StreamDefinition) -> None:
        configs = parse_exports(definition.export_definition)
        await self._store.update(definition)
        if configs != self._configs.get(definition.name, ()):
            await self._stop_stream(definition.name)
            await self._start_stream(definition, configs)

    async def delete(self, name: str) -> None:
        await self._stop_stream(name)
        await self._store.delete(name)

    def describe(self, name: str) -> StreamInfo:
        info = self._store.describe(name)
        statuses = tuple(running.exporter.status() for running in self._exports.get(name, ()))
        return dataclasses.replace(info, export_statuses=statuses)

    def names(self) -> list[str]:
        return self._store.names()

    async def append(self, name: str, payload: bytes) -> int:
        return await self._store.append(name, payload)

    async def read(
        self,
        name: str,
        *,
        desired_start_sequence_number: int = 0,
        min_message_count: int = 1,
        max_message_count: int | None = None,
        read_timeout_millis: int = 0,
    ) -> list[StoredMessage]:
        return await self._store.read(
            name,
            desired_start_sequence_number=desired_start_sequence_number,
            min_message_count=min_message_count,
            max_message_count=max_message_count,
            read_timeout_millis=read_timeout_millis,
        )

    # -- exporters -----------------------------------------------------------------------------------------

    async def _start_stream(self, definition: StreamDefinition, configs: tuple[ExportConfig, ...]) -> None:
        name = definition.name
        self._configs[name] = configs
        directory = None
        if definition.persistence is Persistence.File:
            directory = self._store.root / stream_directory_name(name)
        running: list[_Running] = []
        for config in configs:
            exporter = self._exporter(name, config, directory)
            await exporter.load()
            task = None
            if not config.disabled:
                task = asyncio.create_task(
                    self._supervise(exporter), name=f"{_TASK_PREFIX}:{name}:{config.identifier}"
                )
            running.append(_Running(exporter, task))
        self._exports[name] = running

    def _exporter(
        self, name: str, config: ExportConfig, directory: Path | None
    ) -> StreamExporter | S3TaskExporter:
        if config.kind is ExportKind.S3_TASK_EXECUTOR:
            return S3TaskExporter(
                self._store,
                name,
                config,
                sender=self._objects or _NoObjectStore(),
                scheduler=self._scheduler,
                checkpoints=CheckpointFile(directory, config),
                refused=self._refused_files,
                clock=self._clock,
                retry=self._retry,
            )
        channel: TelemetryChannel = self._channel
        if config.kind is ExportKind.HTTP:
            channel = HTTPChannel(config.destination, config.http_format)
        return StreamExporter(
            self._store,
            name,
            config,
            channel=channel,
            scheduler=self._scheduler,
            checkpoints=CheckpointFile(directory, config),
            clock=self._clock,
            retry=self._retry,
        )

    async def _stop_stream(self, name: str) -> None:
        self._configs.pop(name, None)
        for running in self._exports.pop(name, []):
            if running.task is not None:
                running.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running.task

    async def _supervise(self, exporter: StreamExporter | S3TaskExporter) -> None:
        """Run ``exporter``; after an unexpected failure (a checkpoint the disk refused), run it again."""
        config = exporter.config
        attempt = 0
        while True:
            try:
                await exporter.run()
                return
            except (StreamClosedError, StreamNotFoundError):
                return  # the stream was deleted or the store closed: nothing left to export
            except Exception as error:
                exporter.fail(f"The export failed and restarts: {error}")
                logger.exception(
                    "Export %r of stream %r failed; restarting it", config.identifier, config.kind
                )
            await self._clock.sleep(self._retry.delay(attempt))
            attempt += 1


class _NoObjectStore:
    """Where S3 tasks go on a device without a cloud connection: nowhere yet; they wait and are tried again."""

    async def upload(self, task: S3Task, *, label: str) -> int:
        raise ExportDeliveryError(
            "This device has no cloud connection (no cloud section in its configuration file); "
            "S3 export tasks wait and resume once the runtime runs with one"
        )
