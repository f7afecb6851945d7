"""The stream store: the SDK's operations over every stream under one directory, as Greengrass answers them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edgewise.runtime.streams import (
    InvalidStreamRequestError,
    NotEnoughMessagesError,
    Persistence,
    StrategyOnFull,
    StreamClosedError,
    StreamDefinition,
    StreamNotFoundError,
    StreamResponseTooLargeError,
    StreamStore,
    StreamUpdateNotAllowedError,
)
from edgewise.runtime.streams import store as store_module
from edgewise.runtime.streams.directory import DEFINITION_FILE
from edgewise.runtime.streams.records import HEADER_BYTES
from edgewise.runtime.streams.store import stream_directory_name

T0 = 1_700_000_000_000
DEADLINE = 5


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _definition(name: str = "s", **changes: Any) -> StreamDefinition:
    return StreamDefinition(name, **{"max_size": 4096, "stream_segment_size": 1024, **changes})


async def test_create_describe_list_delete(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition("b"))
    await store.create(_definition("a", persistence=Persistence.Memory))

    info = store.describe("b")

    assert store.names() == ["a", "b"]
    assert info.definition == _definition("b")
    assert (info.storage_status.oldest_sequence_number, info.storage_status.newest_sequence_number) == (0, -1)
    assert info.storage_status.total_bytes == 0
    assert info.export_statuses == ()
    await store.delete("b")
    assert store.names() == ["a"]
    assert not (tmp_path / stream_directory_name("b")).exists()
    with pytest.raises(StreamNotFoundError, match="'b'") as caught:
        store.describe("b")
    assert caught.value.status == "ResourceNotFound"
    await store.close()


async def test_creating_a_stream_that_exists_is_an_invalid_request(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition())

    with pytest.raises(InvalidStreamRequestError, match="already exists") as caught:
        await store.create(_definition(max_size=8192))

    assert caught.value.field == "name"
    assert store.describe("s").definition.max_size == 4096
    await store.close()


@pytest.mark.parametrize("operation", ["update", "delete", "append", "read"])
async def test_operations_on_a_missing_stream_are_resource_not_found(tmp_path: Path, operation: str) -> None:
    store = await StreamStore.open(tmp_path)
    calls = {
        "update": lambda: store.update(_definition("missing")),
        "delete": lambda: store.delete("missing"),
        "append": lambda: store.append("missing", b"x"),
        "read": lambda: store.read("missing"),
    }

    with pytest.raises(StreamNotFoundError):
        await calls[operation]()
    await store.close()


async def test_names_are_never_paths(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    for name in ("..", ".", "x" * 255):
        await store.create(_definition(name))
        await store.append(name, name.encode())

    reopened_names = (await _reopen(store, tmp_path)).names()

    assert reopened_names == sorted(["..", ".", "x" * 255])
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        stream_directory_name(name) for name in reopened_names
    )


async def _reopen(store: StreamStore, root: Path, clock: Clock | None = None) -> StreamStore:
    await store.close()
    return await StreamStore.open(root, clock=clock or Clock())


async def test_restart_keeps_file_streams_and_forgets_memory_streams(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path, clock=Clock())
    await store.create(_definition("file", flush_on_write=True, time_to_live_millis=60_000))
    await store.create(_definition("memory", persistence=Persistence.Memory))
    for index in range(3):
        await store.append("file", b"f%d" % index)
        await store.append("memory", b"m%d" % index)

    reopened = await _reopen(store, tmp_path)

    assert reopened.names() == ["file"]
    assert reopened.describe("file").definition == _definition(
        "file", flush_on_write=True, time_to_live_millis=60_000
    )
    messages = await reopened.read("file", min_message_count=3)
    assert [(m.sequence_number, m.payload, m.ingest_time) for m in messages] == [
        (0, b"f0", T0),
        (1, b"f1", T0),
        (2, b"f2", T0),
    ]
    assert await reopened.append("file", b"f3") == 3
    await reopened.close()


async def test_sequence_numbers_survive_a_restart_after_overwrite_removed_everything(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition(max_size=1024, stream_segment_size=1024))
    for _ in range(4):
        await store.append("s", b"p" * (1024 - HEADER_BYTES))

    reopened = await _reopen(store, tmp_path)

    assert reopened.describe("s").storage_status.oldest_sequence_number == 3
    assert await reopened.append("s", b"next") == 4
    await reopened.close()


async def test_update_applies_the_allowed_changes_and_keeps_them(tmp_path: Path) -> None:
    clock = Clock()
    store = await StreamStore.open(tmp_path, clock=clock)
    await store.create(_definition())
    await store.append("s", b"old")
    clock.now += 120_000
    updated = _definition(
        max_size=8192,
        stream_segment_size=2048,
        time_to_live_millis=60_000,
        strategy_on_full=StrategyOnFull.RejectNewData,
        flush_on_write=True,
        export_definition={"kinesis": [{"identifier": "k", "kinesisStreamName": "telemetry"}]},
    )

    await store.update(updated)

    assert store.describe("s").definition == updated
    assert store.describe("s").storage_status.oldest_sequence_number == 1, (
        "the lower TTL removed the old message"
    )
    assert (await _reopen(store, tmp_path, clock)).describe("s").definition == updated


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"persistence": Persistence.Memory}, "persistence"),
        ({"max_size": 1024}, "max_size"),
        ({"max_size": 2048, "stream_segment_size": 4096}, "max_size"),
    ],
)
async def test_update_refuses_what_greengrass_refuses(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition())
    for _ in range(5):
        await store.append("s", b"p" * 300)

    with pytest.raises(StreamUpdateNotAllowedError) as caught:
        await store.update(_definition(**changes))

    assert caught.value.field == field
    assert field in str(caught.value)
    assert caught.value.status == "UpdateNotAllowed"
    assert store.describe("s").definition == _definition()
    await store.close()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"desired_start_sequence_number": -1}, "desired_start_sequence_number"),
        ({"desired_start_sequence_number": 2**63}, "desired_start_sequence_number"),
        ({"min_message_count": 0}, "min_message_count"),
        ({"min_message_count": 2**31}, "min_message_count"),
        ({"max_message_count": 0}, "max_message_count"),
        ({"min_message_count": 3, "max_message_count": 2}, "max_message_count"),
        ({"read_timeout_millis": -1}, "read_timeout_millis"),
        ({"read_timeout_millis": 9_223_372_036_855}, "read_timeout_millis"),
        ({"read_timeout_millis": 1.5}, "read_timeout_millis"),
    ],
)
async def test_read_options_are_checked_naming_the_field(
    tmp_path: Path, options: dict[str, Any], field: str
) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition())

    with pytest.raises(InvalidStreamRequestError) as caught:
        await store.read("s", **options)

    assert caught.value.field == field
    assert field in str(caught.value)
    await store.close()


async def test_request_names_and_payloads_are_checked_naming_the_field(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)

    with pytest.raises(InvalidStreamRequestError, match="stream_name"):
        await store.read("bad/name")
    with pytest.raises(InvalidStreamRequestError, match="name"):
        await store.append("", b"x")
    with pytest.raises(InvalidStreamRequestError, match="payload"):
        await store.append("s", "text")  # type: ignore[arg-type]
    await store.close()


async def test_read_windows_and_counts(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition(max_size=1 << 20))
    for index in range(10):
        await store.append("s", b"%d" % index)

    default = await store.read("s")
    window = await store.read("s", desired_start_sequence_number=4, min_message_count=2, max_message_count=3)
    at_most_available = await store.read("s", desired_start_sequence_number=8, max_message_count=100)

    assert [m.sequence_number for m in default] == [0]
    assert [m.sequence_number for m in window] == [4, 5, 6]
    assert [m.payload for m in at_most_available] == [b"8", b"9"]
    with pytest.raises(NotEnoughMessagesError, match="min_message_count 3") as caught:
        await store.read("s", desired_start_sequence_number=8, min_message_count=3)
    assert caught.value.status == "NotEnoughMessages"
    await store.close()


async def test_reading_removed_messages_starts_at_the_oldest_kept(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition())
    for _ in range(12):
        await store.append("s", b"p" * (400 - HEADER_BYTES))
    oldest = store.describe("s").storage_status.oldest_sequence_number

    messages = await store.read(
        "s", desired_start_sequence_number=0, min_message_count=2, max_message_count=2
    )

    assert oldest > 0
    assert [m.sequence_number for m in messages] == [oldest, oldest + 1]
    await store.close()


async def test_a_blocking_read_is_woken_by_appends(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition())
    await store.append("s", b"first")
    reader = asyncio.create_task(
        store.read("s", min_message_count=3, max_message_count=10, read_timeout_millis=60_000)
    )

    await store.append("s", b"second")
    await store.append("s", b"third")

    async with asyncio.timeout(DEADLINE):
        messages = await reader
    assert [m.payload for m in messages] == [b"first", b"second", b"third"]
    await store.close()


async def test_a_blocking_read_times_out_with_not_enough_messages(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition())
    await store.append("s", b"only")

    with pytest.raises(NotEnoughMessagesError, match="1 messages"):
        async with asyncio.timeout(DEADLINE):
            await store.read("s", min_message_count=2, read_timeout_millis=20)
    await store.close()


@pytest.mark.parametrize("ending", ["delete", "close"])
async def test_a_waiting_read_ends_when_the_stream_goes_away(tmp_path: Path, ending: str) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition())
    reader = asyncio.create_task(store.read("s", read_timeout_millis=60_000))
    # One turn of the loop lets the reader reach its wait (it does no I/O before), so it sees the stream go.
    await asyncio.sleep(0)

    await (store.delete("s") if ending == "delete" else store.close())

    with pytest.raises(StreamClosedError):
        async with asyncio.timeout(DEADLINE):
            await reader


async def test_a_read_answer_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_READ_BYTES", 3 * (HEADER_BYTES + 100))
    store = await StreamStore.open(tmp_path)
    await store.create(_definition(max_size=1 << 20))
    for _ in range(5):
        await store.append("s", b"p" * 100)

    bounded = await store.read("s", max_message_count=5)

    assert len(bounded) == 3
    with pytest.raises(StreamResponseTooLargeError, match="min_message_count 4") as caught:
        await store.read("s", min_message_count=4)
    assert caught.value.status == "ResponsePayloadTooLarge"
    await store.close()


async def test_ttl_sweep_over_every_stream(tmp_path: Path) -> None:
    clock = Clock()
    store = await StreamStore.open(tmp_path, clock=clock)
    await store.create(_definition("a", time_to_live_millis=60_000))
    await store.create(_definition("b"))
    await store.append("a", b"x")
    await store.append("b", b"y")
    clock.now += 60_000

    await store.remove_expired()

    assert store.describe("a").storage_status.total_bytes == 0
    assert store.describe("b").storage_status.total_bytes > 0
    await store.close()


async def test_open_cleans_up_after_a_crash_and_moves_damaged_streams_aside(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.create(_definition("kept"))
    await store.create(_definition("damaged"))
    await store.append("damaged", b"data")
    await store.close()
    (tmp_path / stream_directory_name("damaged") / DEFINITION_FILE).write_bytes(b"\xff not cbor")
    (tmp_path / "half-created").mkdir()
    (tmp_path / ".trash-0123").mkdir()

    reopened = await StreamStore.open(tmp_path)

    assert reopened.names() == ["kept"]
    leftovers = sorted(path.name for path in tmp_path.iterdir())
    assert leftovers[0].startswith(".damaged-" + stream_directory_name("damaged"))
    assert leftovers[1:] == [stream_directory_name("kept")]
    await reopened.create(_definition("damaged"))
    await reopened.close()


async def test_a_closed_store_refuses_requests(tmp_path: Path) -> None:
    store = await StreamStore.open(tmp_path)
    await store.close()

    with pytest.raises(StreamClosedError):
        store.describe("s")
    with pytest.raises(StreamClosedError):
        await store.create(_definition())
