"""Exports to the cloud end to end: the real ``stream-manager`` SDK appends to a stream with a ``KinesisConfig``,
the runtime's cloud link carries the batches through a real Mosquitto, and a small cloud (paho) stores each record
once by (thing, stream, sequence number) and answers. Every message arrives exactly once, also when the
exports stop mid-way without warning and start again from their checkpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from stream_manager import (
    ExportDefinition,
    KinesisConfig,
    MessageStreamDefinition,
    StrategyOnFull,
    StreamManagerClient,
)
from tests.runtime.streams.export.cloud import SmallCloud
from tests.support.cloudlink_settings import SettingsFactory, broker, ca, settings_for
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import eventually

from edgewise.protocol import telemetry
from edgewise.runtime.cloudlink import CloudLink
from edgewise.runtime.streams.export import CloudTelemetryChannel, ExportDeliveryError, StreamExportService
from edgewise.runtime.streams.server import StreamServer
from edgewise.runtime.streams.store import StreamStore

__all__ = ["broker", "ca", "settings_for"]

THING = "dev-1"
TOKEN = "ABCDEFGHIJKLMNOP"


@pytest.fixture
def cloud(broker: Mosquitto) -> Iterator[SmallCloud]:
    with broker.client("cloud") as client:
        yield SmallCloud(client)


@pytest.fixture
async def link(settings_for: SettingsFactory, tmp_path: Path) -> AsyncIterator[CloudLink]:
    async with CloudLink(settings_for(), client_id=THING, spool_dir=tmp_path / "spool") as link:
        await link.wait_connected()
        yield link


class Device:
    """A stream store with its exports and the SDK's server, as the stream manager component runs them."""

    def __init__(self, root: Path, link: CloudLink) -> None:
        self.root = root
        self.link = link

    async def start(self) -> int:
        self.store = await StreamStore.open(self.root)
        self.channel = CloudTelemetryChannel(self.link, THING, timeout=5)
        self.exports = StreamExportService(self.store, channel=self.channel)
        await self.exports.start()
        self.server = StreamServer(self.exports, authenticate=lambda token: "com.example.Writer", port=0)
        await self.server.start()
        return self.server.port

    async def stop(self) -> None:
        await self.server.close()
        await self.exports.close()
        self.channel.close()
        await self.store.close()


async def sdk_client(port: int) -> StreamManagerClient:
    return await asyncio.to_thread(StreamManagerClient, host="127.0.0.1", port=port, request_timeout=10)


def exported_stream(batch_size: int) -> MessageStreamDefinition:
    return MessageStreamDefinition(
        name="telemetry",
        strategy_on_full=StrategyOnFull.OverwriteOldestData,
        flush_on_write=True,
        export_definition=ExportDefinition(
            kinesis=[
                KinesisConfig(identifier="to-cloud", kinesis_stream_name="trucks", batch_size=batch_size)
            ]
        ),
    )


def expected(count: int) -> dict[tuple[str, str, int], bytes]:
    return {(THING, "trucks", n): f"reading {n}".encode() for n in range(count)}


def last_exported(device: Device) -> int:
    return device.exports.describe("telemetry").export_statuses[0].last_exported_sequence_number


async def append(client: StreamManagerClient, numbers: range) -> None:
    for n in numbers:
        await asyncio.to_thread(client.append_message, "telemetry", f"reading {n}".encode())


async def test_every_appended_message_reaches_the_cloud_exactly_once(
    tmp_path: Path, link: CloudLink, cloud: SmallCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
    device = Device(tmp_path / "streams", link)
    client = await sdk_client(await device.start())
    try:
        await asyncio.to_thread(client.create_message_stream, exported_stream(batch_size=7))
        await append(client, range(50))

        await eventually(lambda: cloud.stored() == expected(50), what="every message in the cloud")
        await eventually(lambda: last_exported(device) == 49, what="the checkpoint")
        info = await asyncio.to_thread(client.describe_message_stream, "telemetry")
        (status,) = info.export_statuses
        assert status.export_config_identifier == "to-cloud"
        assert status.last_exported_sequence_number == 49
        assert status.exported_messages_count == 50
        assert status.error_message is None
    finally:
        await asyncio.to_thread(client.close)
        await device.stop()


async def test_exports_stopped_mid_way_resume_after_their_checkpoint(
    tmp_path: Path, link: CloudLink, cloud: SmallCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
    device = Device(tmp_path / "streams", link)
    client = await sdk_client(await device.start())
    await asyncio.to_thread(client.create_message_stream, exported_stream(batch_size=5))
    await append(client, range(20))
    await eventually(lambda: cloud.stored() == expected(20))
    # The cloud stores the next batch but its answer never comes: the device stops before it learns of it,
    # sends that batch again after the restart, and the cloud counts it as duplicates.
    cloud.answering = False
    batches = cloud.batches
    await append(client, range(20, 23))
    await eventually(lambda: cloud.batches > batches, what="a batch the cloud leaves unanswered")
    checkpoint = last_exported(device)
    await asyncio.to_thread(client.close)
    await device.stop()
    assert checkpoint == 19

    cloud.answering = True
    client = await sdk_client(await device.start())
    try:
        await append(client, range(23, 30))
        await eventually(lambda: cloud.stored() == expected(30), what="every message in the cloud")
        await eventually(
            lambda: (
                device.exports.describe("telemetry").export_statuses[0].last_exported_sequence_number == 29
            )
        )
    finally:
        await asyncio.to_thread(client.close)
        await device.stop()


async def test_while_the_broker_is_down_exports_wait_and_then_deliver_everything_once(
    tmp_path: Path, link: CloudLink, broker: Mosquitto, cloud: SmallCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
    device = Device(tmp_path / "streams", link)
    client = await sdk_client(await device.start())
    try:
        await asyncio.to_thread(client.create_message_stream, exported_stream(batch_size=4))
        await append(client, range(5))
        await eventually(lambda: cloud.stored() == expected(5))

        await asyncio.to_thread(broker.stop)
        await eventually(lambda: not link.connected, what="the link to notice")
        await append(client, range(5, 25))
        await asyncio.to_thread(broker.start)

        await eventually(lambda: cloud.stored() == expected(25), what="every message in the cloud")
        await eventually(lambda: last_exported(device) == 24, what="the checkpoint")
        # Nothing is left behind in the link's spool: it held each batch only while it was in flight.
        await eventually(lambda: link.statistics().spooled == 0, what="an empty spool")
    finally:
        await asyncio.to_thread(client.close)
        await device.stop()


async def test_a_batch_published_before_a_reconnection_fails_at_once_to_be_sent_again(
    link: CloudLink, broker: Mosquitto
) -> None:
    # Nobody answers and the answer timeout is ten minutes: only the reconnection can end this send.
    channel = CloudTelemetryChannel(link, THING, timeout=600)
    record = telemetry.ExportRecord(0, 1, b"reading 0")
    batch = telemetry.ExportBatch("lost-answer", "trucks", "telemetry", "to-cloud", (record,))
    with broker.client("observer") as observer:
        await asyncio.to_thread(observer.subscribe, telemetry.batch_topic(THING))
        sending = asyncio.ensure_future(channel.send(batch))
        try:
            await eventually(lambda: observer.messages, what="the batch published")
            await asyncio.to_thread(broker.stop)
            await eventually(lambda: not link.connected, what="the link to notice")
            await asyncio.to_thread(broker.start)
            with pytest.raises(ExportDeliveryError, match="reconnected before export batch lost-answer"):
                await asyncio.wait_for(sending, 60)
        finally:
            sending.cancel()
            channel.close()
