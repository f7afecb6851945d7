"""The stream-exporting component: which messages are readings, the stream and export it creates (through the real
``stream-manager`` SDK against the runtime's stream server), how it treats failures and bad options, its recipe."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from types import SimpleNamespace

import pytest
import stream_manager
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.components import RECIPES_DIR
from edgewise.components.reading_exporter.__main__ import (
    EXPORT_IDENTIFIER,
    MAX_RETRY_S,
    RETRY_S,
    ExportSettings,
    ReadingExporter,
    StreamAppender,
    message_of,
    parse_arguments,
    reading_record,
    stream_definition,
)
from edgewise.recipe import load_recipe
from edgewise.runtime.streams.definition import Persistence, StrategyOnFull
from edgewise.runtime.streams.export.definitions import ExportKind, parse_exports
from edgewise.runtime.streams.server import StreamServer
from edgewise.runtime.streams.store import StreamStore

LOGGER = "edgewise.components.reading_exporter"
COMPONENT = "edgewise.sim.ReadingExporter"
TOKEN = "reading-exporter-token"
READING = {"thing": "hub-1", "sequence": 3, "temperature": 21.5, "anomaly": 0, "fault": None}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FlakyAppender:
    """Records what is appended; the appends numbered in ``fail_appends`` (from 1, over every appender made by one
    factory) raise."""

    def __init__(self, log: list[bytes], calls: list[int], fail_appends: Collection[int]) -> None:
        self._log = log
        self._calls = calls
        self._fail = fail_appends
        self.closed = False

    def append(self, data: bytes) -> None:
        self._calls[0] += 1
        if self._calls[0] in self._fail:
            raise ConnectionResetError("stream manager went away")
        self._log.append(data)

    def close(self) -> None:
        self.closed = True


class Factory:
    """Opens FlakyAppenders; the opens numbered in ``fail_opens`` (from 1) raise."""

    def __init__(self, *, fail_opens: Collection[int] = (), fail_appends: Collection[int] = ()) -> None:
        self.appended: list[bytes] = []
        self.opened: list[FlakyAppender] = []
        self.opens = 0
        self._calls = [0]
        self._fail_opens = fail_opens
        self._fail_appends = fail_appends

    def __call__(self) -> FlakyAppender:
        self.opens += 1
        if self.opens in self._fail_opens:
            raise ConnectionRefusedError("nothing listens on the port")
        appender = FlakyAppender(self.appended, self._calls, self._fail_appends)
        self.opened.append(appender)
        return appender


def test_a_json_reading_is_appended_as_compact_json() -> None:
    assert reading_record(READING) == json.dumps(READING, separators=(",", ":")).encode()
    assert json.loads(reading_record(json.dumps(READING).encode())) == READING


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ([1, 2], "a reading is a JSON object, not list"),
        ("21.5", "a reading is a JSON object, not str"),
        (None, "a reading is a JSON object, not NoneType"),
        (b"[1, 2]", "a reading is a JSON object, not list"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'{"temperature": NaN}', "not JSON"),
    ],
)
def test_what_is_not_a_reading_is_refused_saying_why(message: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        reading_record(message)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_either_a_reading_or_refused(data: bytes) -> None:
    try:
        record = reading_record(data)
    except ValueError:
        return
    assert json.loads(record) == json.loads(data)
    assert isinstance(json.loads(record), dict)


def test_the_stream_is_on_disk_keeps_the_newest_readings_and_is_exported_to_the_cloud_stream() -> None:
    definition = stream_definition(stream_manager, ExportSettings(stream="Hub readings", cloud_stream="a/b"))
    assert definition.name == "Hub readings"
    assert definition.max_size == ExportSettings().max_size_bytes
    # A full stream drops its oldest quarter, not every reading.
    assert definition.stream_segment_size == definition.max_size // 4
    assert definition.persistence == stream_manager.Persistence.File
    assert definition.strategy_on_full == stream_manager.StrategyOnFull.OverwriteOldestData
    [kinesis] = definition.export_definition.kinesis
    assert (kinesis.identifier, kinesis.kinesis_stream_name) == (EXPORT_IDENTIFIER, "a/b")
    # No batch interval: each batch leaves as soon as readings are there.
    assert kinesis.batch_interval_millis is None


@pytest.fixture
async def stream_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StreamStore]:
    """The runtime's stream store and server, on the port and with the token a component's environment names."""
    store = await StreamStore.open(tmp_path / "streams")
    server = StreamServer(store, authenticate=lambda token: COMPONENT if token == TOKEN else None, port=0)
    async with server:
        monkeypatch.setenv("STREAM_MANAGER_SERVER_PORT", str(server.port))
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
        yield store
    await store.close()


async def test_the_appender_creates_the_stream_with_its_export_then_a_later_run_updates_it(
    stream_server: StreamStore,
) -> None:
    store = stream_server
    appender = await asyncio.to_thread(StreamAppender, ExportSettings())
    try:
        await asyncio.to_thread(appender.append, reading_record(READING))
    finally:
        await asyncio.to_thread(appender.close)
    info = store.describe("SensorReadings")
    assert info.definition.persistence is Persistence.File
    assert info.definition.strategy_on_full is StrategyOnFull.OverwriteOldestData
    [export] = parse_exports(info.definition.export_definition)
    assert (export.kind, export.identifier, export.destination) == (
        ExportKind.KINESIS,
        EXPORT_IDENTIFIER,
        "sensor-readings",
    )
    [message] = await store.read("SensorReadings")
    assert json.loads(message.payload) == READING

    # The next run finds the stream (with its reading) and brings its definition up to date.
    again = await asyncio.to_thread(
        StreamAppender, ExportSettings(cloud_stream="other-readings", max_size_bytes=4096)
    )
    await asyncio.to_thread(again.close)
    info = store.describe("SensorReadings")
    assert info.definition.max_size == 4096
    assert [export.destination for export in parse_exports(info.definition.export_definition)] == [
        "other-readings"
    ]
    assert len(await store.read("SensorReadings", max_message_count=10)) == 1


def test_readings_are_appended_in_order_and_what_is_not_a_reading_is_skipped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = Factory()
    exporter = ReadingExporter(factory)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for sequence in range(3):
            exporter.handle({**READING, "sequence": sequence})
            exporter.handle(b"not a reading")
        exporter.close()
    assert [json.loads(data)["sequence"] for data in factory.appended] == [0, 1, 2]
    assert (exporter.appended, exporter.skipped, exporter.lost) == (3, 3, 0)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("not a reading" in message for message in messages) == 1
    assert factory.opens == 1
    assert factory.opened[0].closed
    assert "3 readings appended, 3 messages skipped, 0 readings lost" in messages[-1]


def test_an_unreachable_stream_manager_costs_readings_until_it_is_reached_after_a_back_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    factory = Factory(fail_opens={1, 2})
    exporter = ReadingExporter(factory, clock=clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        exporter.open()
        exporter.handle(READING)  # within the back-off: not even tried
        assert factory.opens == 1
        clock.now += RETRY_S
        exporter.handle(READING)  # tried, fails again: the back-off doubles
        clock.now += RETRY_S
        exporter.handle(READING)
        assert factory.opens == 2
        clock.now += RETRY_S
        exporter.handle(READING)
    assert factory.opens == 3
    assert (exporter.appended, exporter.lost) == (1, 3)
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "cannot reach the stream manager" in errors[0].getMessage()
    assert "appending readings again" in [record.getMessage() for record in caplog.records]


def test_a_refused_append_closes_the_client_and_a_new_one_is_opened_after_the_back_off() -> None:
    clock = Clock()
    factory = Factory(fail_appends={2})
    exporter = ReadingExporter(factory, clock=clock)
    for sequence in range(4):
        exporter.handle({**READING, "sequence": sequence})
        clock.now += RETRY_S
    assert [json.loads(data)["sequence"] for data in factory.appended] == [0, 2, 3]
    assert factory.opens == 2
    assert factory.opened[0].closed
    assert (exporter.appended, exporter.lost) == (3, 1)


def test_the_back_off_doubles_up_to_its_maximum() -> None:
    clock = Clock()
    factory = Factory(fail_opens=set(range(1, 100)))
    exporter = ReadingExporter(factory, clock=clock)
    waits = []
    for _ in range(8):
        opens = factory.opens
        waited = 0.0
        while factory.opens == opens:
            exporter.handle(READING)
            clock.now += 0.5
            waited += 0.5
        waits.append(waited)
    # The first try is at once; each later one waits twice as long as the one before, at most MAX_RETRY_S.
    assert waits == [
        0.5,
        RETRY_S,
        2 * RETRY_S,
        4 * RETRY_S,
        8 * RETRY_S,
        16 * RETRY_S,
        MAX_RETRY_S,
        MAX_RETRY_S,
    ]


def test_a_subscription_event_gives_its_json_or_binary_message() -> None:
    json_event = SimpleNamespace(json_message=SimpleNamespace(message=READING), binary_message=None)
    binary_event = SimpleNamespace(json_message=None, binary_message=SimpleNamespace(message=b"{}"))
    assert message_of(json_event) == READING
    assert message_of(binary_event) == b"{}"
    assert message_of(SimpleNamespace(json_message=None, binary_message=None)) is None


def test_the_options_default_to_the_demo_s_stream() -> None:
    args = parse_arguments([])
    assert args.settings == ExportSettings(
        topic="sensors/+/reading",
        stream="SensorReadings",
        cloud_stream="sensor-readings",
        max_size_bytes=16 * 1024 * 1024,
    )


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--topic", "sensors/#/reading"], "topic:"),
        (["--stream", "sensors/readings"], "stream:"),
        (["--stream", ""], "stream:"),
        (["--cloud-stream", "/readings"], "cloud_stream:"),
        (["--cloud-stream", "a\nb"], "cloud_stream:"),
        (["--max-size", "4095"], "max_size_bytes:"),
        (["--max-size", "big"], "--max-size"),
    ],
)
def test_bad_options_are_refused_naming_them(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_arguments(argv)
    assert problem in capsys.readouterr().err


def test_the_recipe_needs_stream_manager_reads_the_local_readings_and_passes_its_configuration() -> None:
    recipe = load_recipe(RECIPES_DIR / "edgewise.sim.ReadingExporter-1.0.0.yaml")
    assert recipe.name == COMPONENT
    raw = recipe.raw
    assert raw["ComponentDependencies"]["aws.greengrass.StreamManager"]["VersionRequirement"] == "^2.0.0"
    defaults = raw["ComponentConfiguration"]["DefaultConfiguration"]
    run = raw["Manifests"][0]["Lifecycle"]["Run"]
    assert "-m edgewise.components.reading_exporter" in run
    for key in ("topic", "streamName", "cloudStreamName", "maxSizeBytes"):
        assert f"{{configuration:/{key}}}" in run
    [policy] = defaults["accessControl"]["aws.greengrass.ipc.pubsub"].values()
    assert policy["operations"] == ["aws.greengrass#SubscribeToTopic"]
    assert defaults["topic"].startswith(policy["resources"][0].removesuffix("*"))
    # The sensor hub publishes where the exporter listens.
    hub = load_recipe(RECIPES_DIR / "edgewise.sim.SensorHub-1.1.0.yaml").raw
    local_topic = hub["ComponentConfiguration"]["DefaultConfiguration"]["localTopic"]
    assert local_topic.replace("{thing}", "+") == defaults["topic"]
