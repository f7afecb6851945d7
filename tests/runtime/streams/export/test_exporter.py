"""Exporters over a real stream store and a scripted channel: batch size and interval, start sequence number,
disabled and unsupported exports, retries that neither skip nor duplicate, and resuming from the checkpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.clock import FakeClock
from tests.support.waiting import eventually

from edgewise.protocol import telemetry
from edgewise.runtime.streams.definition import ExportStatus, Persistence, StreamDefinition
from edgewise.runtime.streams.export import (
    ExportClock,
    RetrySettings,
    StreamExportService,
    UnavailableChannel,
)
from edgewise.runtime.streams.export.channel import Answer
from edgewise.runtime.streams.store import StreamStore

from .conftest import RecordingChannel, accept, reject, unanswered

RETRY = RetrySettings(first=1.0, most=1.0)


def kinesis(identifier: str = "k", **fields: Any) -> dict[str, Any]:
    return {"identifier": identifier, "kinesisStreamName": "trucks", **fields}


def stream(name: str = "source", **exports: list[dict[str, Any]]) -> StreamDefinition:
    return StreamDefinition(name=name, export_definition=exports)


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
async def service(
    store: StreamStore, channel: RecordingChannel, export_clock: ExportClock
) -> AsyncIterator[StreamExportService]:
    service = StreamExportService(store, channel=channel, clock=export_clock, retry=RETRY)
    await service.start()
    try:
        yield service
    finally:
        await service.close()


async def append(service: StreamExportService, count: int, name: str = "source") -> None:
    for index in range(count):
        await service.append(name, f"m{index}".encode())


def status(service: StreamExportService, name: str = "source") -> ExportStatus:
    (only,) = service.describe(name).export_statuses
    return only


async def test_messages_leave_in_batches_of_batch_size_each_exactly_once(
    service: StreamExportService, channel: RecordingChannel
) -> None:
    await service.create(StreamDefinition(name="source"))
    await append(service, 5)
    await service.update(stream(kinesis=[kinesis(batchSize=2)]))

    await eventually(lambda: status(service).last_exported_sequence_number == 4)

    assert [[r.sequence_number for r in batch.records] for batch in channel.sent] == [[0, 1], [2, 3], [4]]
    assert {(batch.stream, batch.source, batch.export_id) for batch in channel.sent} == {
        ("trucks", "source", "k")
    }
    assert [r.payload for batch in channel.sent for r in batch.records] == [
        f"m{i}".encode() for i in range(5)
    ]
    assert status(service) == ExportStatus("k", 4, status(service).last_export_time, None, 10, 5)


async def test_the_batch_interval_waits_for_a_full_batch_or_for_the_oldest_message_to_have_waited(
    service: StreamExportService, channel: RecordingChannel, clock: FakeClock
) -> None:
    await service.create(stream(kinesis=[kinesis(batchSize=3, batchIntervalMillis=60_000)]))

    await append(service, 2)
    await eventually(lambda: clock.sleeping == [60.0], what="the exporter waiting for its batch to fill")
    await append(service, 1)
    await eventually(lambda: len(channel.accepted) == 1)
    assert [r.sequence_number for r in channel.accepted[0].records] == [0, 1, 2]

    clock.advance(30)
    await append(service, 1)  # appended at 30 s: it may wait until 90 s
    await eventually(lambda: clock.sleeping == [60.0])
    clock.advance(60)
    await eventually(lambda: len(channel.accepted) == 2)
    assert [r.sequence_number for r in channel.accepted[1].records] == [3]


async def test_export_starts_at_the_start_sequence_number(
    service: StreamExportService, channel: RecordingChannel
) -> None:
    await service.create(StreamDefinition(name="source"))
    await append(service, 6)
    await service.update(stream(kinesis=[kinesis(startSequenceNumber=4)]))

    await eventually(lambda: channel.sequence_numbers() == [4, 5])
    assert status(service).last_exported_sequence_number == 5


async def test_a_disabled_export_sends_nothing_and_an_s3_task_that_is_no_task_fails(
    service: StreamExportService, channel: RecordingChannel
) -> None:
    await service.create(
        stream(
            kinesis=[kinesis("on"), kinesis("off", disabled=True)],
            s3TaskExecutor=[{"identifier": "files"}],
        )
    )
    await append(service, 3)

    await eventually(lambda: channel.sequence_numbers() == [0, 1, 2])

    def statuses_now() -> dict[str, ExportStatus]:
        return {s.export_config_identifier: s for s in service.describe("source").export_statuses}

    await eventually(lambda: statuses_now()["files"].last_exported_sequence_number == 2)
    statuses = statuses_now()
    assert {batch.export_id for batch in channel.sent} == {"on"}
    assert statuses["off"] == ExportStatus("off", -1)
    assert "task 2 failed: the message is not an S3ExportTaskDefinition" in str(
        statuses["files"].error_message
    )


async def test_a_refused_or_unanswered_batch_is_sent_again_until_acknowledged(
    store: StreamStore, clock: FakeClock, export_clock: ExportClock
) -> None:
    channel = RecordingChannel(reject, unanswered)
    service = StreamExportService(store, channel=channel, clock=export_clock, retry=RETRY)
    await service.start()
    try:
        await service.create(stream(kinesis=[kinesis(batchSize=2)]))
        await append(service, 3)

        await eventually(lambda: clock.sleeping, what="a back-off after the refusal")
        assert status(service).last_exported_sequence_number == -1
        assert "InternalError: the store is down" in (status(service).error_message or "")
        clock.advance(1.0)
        await eventually(lambda: len(channel.sent) == 2 and clock.sleeping, what="a back-off after no answer")
        assert status(service).error_message == "no answer"
        clock.advance(1.0)

        await eventually(lambda: status(service).last_exported_sequence_number == 2)
        assert status(service).error_message is None
        assert channel.sequence_numbers() == [0, 1, 2]
        assert [batch.records for batch in channel.sent[:3]] == [channel.sent[0].records] * 3
    finally:
        await service.close()


async def test_a_batch_refused_as_invalid_is_split_and_only_the_refused_record_is_skipped(
    store: StreamStore, export_clock: ExportClock
) -> None:
    def refuse_record_2(batch: telemetry.ExportBatch) -> Answer:
        if any(record.sequence_number == 2 for record in batch.records):
            return telemetry.BatchRejection(batch.client_token, telemetry.INVALID_PAYLOAD, "records[0]: bad")
        return accept(batch)

    channel = RecordingChannel(*[refuse_record_2] * 10)
    service = StreamExportService(store, channel=channel, clock=export_clock, retry=RETRY)
    await service.start()
    try:
        await service.create(stream(kinesis=[kinesis(batchSize=4)]))
        await append(service, 4)

        await eventually(lambda: status(service).last_exported_sequence_number == 3)
        assert channel.sequence_numbers() == [0, 1, 3]
        assert "record 2, which the cloud refused: records[0]: bad" in (status(service).error_message or "")
        # Each send of the refused record is in a smaller batch than the one before, ending with it alone.
        holding = [
            len(batch.records) for batch in channel.sent if 2 in {r.sequence_number for r in batch.records}
        ]
        assert holding == sorted(set(holding), reverse=True)
        assert holding[-1] == 1
    finally:
        await service.close()


async def test_a_restart_resumes_right_after_the_checkpoint(
    tmp_path: Path, channel: RecordingChannel, export_clock: ExportClock
) -> None:
    root = tmp_path / "restart"
    store = await StreamStore.open(root)
    service = StreamExportService(store, channel=channel, clock=export_clock, retry=RETRY)
    await service.start()
    await service.create(stream(kinesis=[kinesis(batchSize=2)]))
    await append(service, 3)
    await eventually(lambda: status(service).last_exported_sequence_number == 2)
    await service.close()
    await store.close()

    store = await StreamStore.open(root)
    service = StreamExportService(store, channel=channel, clock=export_clock, retry=RETRY)
    await service.start()
    try:
        assert status(service).last_exported_sequence_number == 2
        await append(service, 2)
        await eventually(lambda: status(service).last_exported_sequence_number == 4)
        assert channel.sequence_numbers() == [0, 1, 2, 3, 4]
        assert status(service).exported_messages_count == 5
    finally:
        await service.close()
        await store.close()


async def test_a_device_without_a_cloud_keeps_its_messages_and_says_why(
    store: StreamStore, export_clock: ExportClock, clock: FakeClock
) -> None:
    service = StreamExportService(
        store, channel=UnavailableChannel("no cloud section"), clock=export_clock, retry=RETRY
    )
    await service.start()
    try:
        await service.create(
            StreamDefinition(
                name="source", persistence=Persistence.Memory, export_definition={"kinesis": [kinesis()]}
            )
        )
        await append(service, 1)
        await eventually(lambda: status(service).error_message == "no cloud section")
        assert status(service).last_exported_sequence_number == -1
    finally:
        await service.close()


async def test_deleting_a_stream_stops_its_exports(
    service: StreamExportService, channel: RecordingChannel
) -> None:
    await service.create(stream(kinesis=[kinesis()]))
    await append(service, 1)
    await eventually(lambda: channel.sequence_numbers() == [0])

    await service.delete("source")
    await service.create(stream(kinesis=[kinesis()]))
    await append(service, 1)

    await eventually(lambda: channel.sequence_numbers() == [0, 0])
