"""The stream server over the export service, driven by the real ``stream-manager`` SDK: invalid export configs are
refused naming their field, and ``describe`` carries each export's status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from stream_manager import (
    ExportDefinition,
    HTTPConfig,
    InvalidRequestException,
    KinesisConfig,
    MessageStreamDefinition,
    S3ExportTaskExecutorConfig,
    StrategyOnFull,
    StreamManagerClient,
)
from tests.support.waiting import eventually

from edgewise.runtime.streams.export import StreamExportService
from edgewise.runtime.streams.server import StreamServer
from edgewise.runtime.streams.store import StreamStore

from .conftest import RecordingChannel

TOKEN = "ABCDEFGHIJKLMNOP"


@pytest.fixture
async def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[StreamManagerClient, RecordingChannel]]:
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
    store = await StreamStore.open(tmp_path / "streams")
    channel = RecordingChannel()
    service = StreamExportService(store, channel=channel)
    await service.start()
    server = StreamServer(service, authenticate=lambda token: "com.example.Writer", port=0)
    await server.start()
    client = await asyncio.to_thread(
        StreamManagerClient, host="127.0.0.1", port=server.port, request_timeout=10
    )
    try:
        yield client, channel
    finally:
        await asyncio.to_thread(client.close)
        await server.close()
        await service.close()
        await store.close()


async def call(function: Any, *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


def definition(exports: ExportDefinition) -> MessageStreamDefinition:
    return MessageStreamDefinition(
        name="telemetry", strategy_on_full=StrategyOnFull.OverwriteOldestData, export_definition=exports
    )


async def test_describe_shows_each_exports_status(
    client: tuple[StreamManagerClient, RecordingChannel],
) -> None:
    sdk, channel = client
    exports = ExportDefinition(
        kinesis=[KinesisConfig(identifier="to-cloud", kinesis_stream_name="trucks", batch_size=2)],
        s3_task_executor=[S3ExportTaskExecutorConfig(identifier="files")],
    )
    await call(sdk.create_message_stream, definition(exports))
    for index in range(3):
        await call(sdk.append_message, "telemetry", f"reading {index}".encode())

    async def exported() -> Any:
        info = await call(sdk.describe_message_stream, "telemetry")
        return {status.export_config_identifier: status for status in info.export_statuses}

    await eventually(lambda: channel.sequence_numbers() == [0, 1, 2])
    deadline = asyncio.get_running_loop().time() + 10
    while (await exported())["files"].last_exported_sequence_number != 2:
        assert asyncio.get_running_loop().time() < deadline, "the S3 tasks did not run"
        await asyncio.sleep(0.05)
    statuses = await exported()

    assert statuses["to-cloud"].last_exported_sequence_number == 2
    assert statuses["to-cloud"].exported_messages_count == 3
    assert statuses["to-cloud"].exported_bytes_from_stream == 3 * len(b"reading 0")
    assert statuses["to-cloud"].last_export_time > 0
    assert statuses["to-cloud"].error_message is None
    # "reading N" is no S3 task: each fails, and the export goes on past it.
    assert "is not an S3ExportTaskDefinition" in statuses["files"].error_message


async def test_an_invalid_export_config_is_refused_naming_its_field(
    client: tuple[StreamManagerClient, RecordingChannel],
) -> None:
    sdk, _ = client
    exports = ExportDefinition(http=[HTTPConfig(identifier="web", uri="file:///etc/passwd")])

    with pytest.raises(InvalidRequestException, match=r"exportDefinition\.http\[0\]\.uri"):
        await call(sdk.create_message_stream, definition(exports))
    assert await call(sdk.list_streams) == []
