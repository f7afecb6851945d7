"""One stream's segmented log: records, segments, torn tails, limits, TTL, restarts."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.runtime.streams import (
    InvalidStreamRequestError,
    Persistence,
    StrategyOnFull,
    StreamDefinition,
    StreamFullError,
    StreamPayloadTooLargeError,
    StreamReadError,
    StreamWriteError,
)
from edgewise.runtime.streams.log import INLINE_WRITE_MAX_BYTES, StreamLog
from edgewise.runtime.streams.records import HEADER_BYTES, decode_records, encode_record
from edgewise.runtime.streams.segments import SEGMENT_SUFFIX

T0 = 1_700_000_000_000
TTL = 60_000


class Clock:
    """Milliseconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _definition(**changes: object) -> StreamDefinition:
    fields: dict[str, object] = {"name": "s", "max_size": 4096, "stream_segment_size": 1024, **changes}
    return StreamDefinition(**fields)  # type: ignore[arg-type]


async def _read_all(log: StreamLog, start: int = 0) -> list[tuple[int, bytes]]:
    status = log.storage_status()
    count = status.newest_sequence_number - max(start, status.oldest_sequence_number) + 1
    if count <= 0:
        return []
    messages = await log.read(
        start=start, min_count=count, max_count=count, timeout_millis=0, max_bytes=1 << 30
    )
    return [(message.sequence_number, message.payload) for message in messages]


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


@given(
    records=st.lists(
        st.tuples(
            st.integers(0, 2**63 - 1), st.integers(-(2**63), 2**63 - 1), st.binary(min_size=1, max_size=64)
        ),
        max_size=20,
    )
)
def test_records_round_trip(records: list[tuple[int, int, bytes]]) -> None:
    data = b"".join(encode_record(*record) for record in records)

    decoded = decode_records(data, "s")

    assert [(m.sequence_number, m.ingest_time, m.payload) for m in decoded] == records


def test_a_damaged_record_is_a_read_error() -> None:
    data = bytearray(encode_record(3, T0, b"payload"))
    data[-1] ^= 0xFF

    with pytest.raises(StreamReadError, match="sequence number 3"):
        decode_records(bytes(data), "s")


@settings(max_examples=25, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=25),
    window=st.tuples(st.integers(0, 30), st.integers(1, 30)),
    persistence=st.sampled_from(Persistence),
)
def test_appended_messages_read_back_in_any_window(
    payloads: list[bytes], window: tuple[int, int], persistence: Persistence
) -> None:
    start, count = window

    async def scenario(directory: Path) -> None:
        definition = _definition(max_size=1 << 20, persistence=persistence)
        log = await StreamLog.create(definition, directory if persistence.is_durable else None, clock=Clock())
        numbers = [await log.append(payload) for payload in payloads]
        expected = list(zip(numbers, payloads, strict=True))[start : start + count]

        messages = (
            await log.read(start=start, min_count=1, max_count=count, timeout_millis=0, max_bytes=1 << 30)
            if expected
            else []
        )

        assert numbers == list(range(len(payloads)))
        assert [(m.sequence_number, m.payload) for m in messages] == expected
        assert all(m.stream_name == "s" and m.ingest_time == T0 for m in messages)
        await log.close()

    with tempfile.TemporaryDirectory() as temporary:
        asyncio.run(scenario(Path(temporary) / "s"))


async def test_segments_roll_at_the_segment_size_and_are_named_by_their_first_sequence_number(
    tmp_path: Path,
) -> None:
    log = await StreamLog.create(_definition(), tmp_path / "s", clock=Clock())
    for _ in range(5):
        await log.append(b"x" * (400 - HEADER_BYTES))

    assert [path.name for path in _segments(tmp_path / "s")] == [
        f"{first:020d}{SEGMENT_SUFFIX}" for first in (0, 2, 4)
    ]
    assert log.storage_status().total_bytes == 5 * 400
    await log.close()


async def test_restart_keeps_messages_and_sequence_numbers(tmp_path: Path) -> None:
    log = await StreamLog.create(_definition(flush_on_write=True), tmp_path / "s", clock=Clock())
    for index in range(7):
        await log.append(f"message {index}".encode() * 20)
    before = await _read_all(log)
    await log.close()

    reopened = await StreamLog.load(tmp_path / "s", clock=Clock())

    assert await _read_all(reopened) == before
    assert reopened.definition == _definition(flush_on_write=True)
    assert await reopened.append(b"after") == 7
    await reopened.close()


@pytest.mark.parametrize("flush_on_write", [False, True])
async def test_small_and_large_appends_read_back_and_survive_a_restart(
    tmp_path: Path, flush_on_write: bool
) -> None:
    definition = _definition(flush_on_write=flush_on_write, max_size=1 << 20, stream_segment_size=1 << 16)
    sizes = [10, INLINE_WRITE_MAX_BYTES, INLINE_WRITE_MAX_BYTES + 1, 200, 3 * INLINE_WRITE_MAX_BYTES, 1]
    log = await StreamLog.create(definition, tmp_path / "s", clock=Clock())
    for index, size in enumerate(sizes):
        assert await log.append(bytes([index + 1]) * size) == index
    await log.close()

    reopened = await StreamLog.load(tmp_path / "s", clock=Clock())

    expected = [(index, bytes([index + 1]) * size) for index, size in enumerate(sizes)]
    assert await _read_all(reopened) == expected
    await reopened.close()


@pytest.mark.parametrize("size", [100, 2 * INLINE_WRITE_MAX_BYTES])
@pytest.mark.parametrize("flush_on_write", [False, True])
async def test_a_failed_write_stores_nothing_and_the_stream_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush_on_write: bool, size: int
) -> None:
    log = await StreamLog.create(
        _definition(flush_on_write=flush_on_write, max_size=1 << 20, stream_segment_size=1 << 16),
        tmp_path / "s",
        clock=Clock(),
    )
    assert await log.append(b"first") == 0
    real_write = os.write

    def half_then_full_disk(fd: int, data: bytes) -> int:
        monkeypatch.setattr(os, "write", real_write)
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full_disk)
    with pytest.raises(StreamWriteError, match="could not store the message"):
        await log.append(b"l" * size)

    assert log.storage_status().newest_sequence_number == 0
    assert await log.append(b"second") == 1
    await log.close()
    reopened = await StreamLog.load(tmp_path / "s", clock=Clock())
    assert await _read_all(reopened) == [(0, b"first"), (1, b"second")]
    await reopened.close()


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 200), min_size=1, max_size=8))
def test_a_torn_tail_loses_only_the_torn_record(cut: int, sizes: list[int]) -> None:
    async def scenario(directory: Path) -> None:
        log = await StreamLog.create(
            _definition(max_size=1 << 20, stream_segment_size=1 << 16), directory, clock=Clock()
        )
        payloads = [bytes([index]) * size for index, size in enumerate(sizes)]
        for payload in payloads:
            await log.append(payload)
        await log.close()
        segment = _segments(directory)[-1]
        cut_at = cut % (segment.stat().st_size + 1)
        os.truncate(segment, cut_at)
        record_ends = [sum(HEADER_BYTES + size for size in sizes[: index + 1]) for index in range(len(sizes))]
        whole = sum(1 for end in record_ends if end <= cut_at)

        reopened = await StreamLog.load(directory, clock=Clock())

        assert await _read_all(reopened) == list(enumerate(payloads))[:whole]
        assert segment.stat().st_size == (record_ends[whole - 1] if whole else 0)
        assert await reopened.append(b"next") == whole
        assert (await _read_all(reopened, whole))[0] == (whole, b"next")
        await reopened.close()

    with tempfile.TemporaryDirectory() as temporary:
        asyncio.run(scenario(Path(temporary) / "s"))


async def test_a_damaged_last_record_is_cut_on_open(tmp_path: Path) -> None:
    log = await StreamLog.create(_definition(), tmp_path / "s", clock=Clock())
    for payload in (b"one", b"two", b"three"):
        await log.append(payload)
    await log.close()
    segment = _segments(tmp_path / "s")[-1]
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))

    reopened = await StreamLog.load(tmp_path / "s", clock=Clock())

    assert await _read_all(reopened) == [(0, b"one"), (1, b"two")]
    await reopened.close()


async def test_overwrite_oldest_data_drops_whole_oldest_segments(tmp_path: Path) -> None:
    log = await StreamLog.create(_definition(), tmp_path / "s", clock=Clock())
    payload = b"p" * (400 - HEADER_BYTES)
    for _ in range(10):
        await log.append(payload)

    status = log.storage_status()
    assert status.total_bytes <= 4096
    assert status.newest_sequence_number == 9
    assert status.oldest_sequence_number % 2 == 0
    assert [number for number, _ in await _read_all(log)] == list(range(status.oldest_sequence_number, 10))
    assert len(_segments(tmp_path / "s")) == (10 - status.oldest_sequence_number + 1) // 2
    await log.close()


async def test_overwrite_when_one_segment_holds_everything(tmp_path: Path) -> None:
    definition = _definition(max_size=1024, stream_segment_size=1 << 20)
    log = await StreamLog.create(definition, tmp_path / "s", clock=Clock())
    for _ in range(3):
        await log.append(b"p" * (400 - HEADER_BYTES))

    assert log.storage_status().oldest_sequence_number == 2
    assert await _read_all(log) == [(2, b"p" * (400 - HEADER_BYTES))]
    await log.close()


async def test_reject_new_data_refuses_the_append_and_keeps_what_is_stored(tmp_path: Path) -> None:
    log = await StreamLog.create(
        _definition(strategy_on_full=StrategyOnFull.RejectNewData), tmp_path / "s", clock=Clock()
    )
    payload = b"p" * (400 - HEADER_BYTES)
    for _ in range(10):
        await log.append(payload)
    stored = await _read_all(log)

    with pytest.raises(StreamFullError, match="RejectNewData") as caught:
        await log.append(payload)

    assert caught.value.status == "InvalidRequest"
    assert await _read_all(log) == stored
    await log.update(_definition(strategy_on_full=StrategyOnFull.RejectNewData, max_size=8192))
    assert await log.append(payload) == 10
    await log.close()


async def test_payload_bounds(tmp_path: Path) -> None:
    log = await StreamLog.create(_definition(), None, clock=Clock())

    with pytest.raises(InvalidStreamRequestError, match="payload") as empty:
        await log.append(b"")
    with pytest.raises(StreamPayloadTooLargeError, match="4072 bytes"):
        await log.append(b"x" * (4096 - HEADER_BYTES + 1))

    assert empty.value.field == "payload"
    assert await log.append(b"x" * (4096 - HEADER_BYTES)) == 0


async def test_ttl_removes_whole_expired_segments(tmp_path: Path) -> None:
    clock = Clock()
    log = await StreamLog.create(_definition(time_to_live_millis=TTL), tmp_path / "s", clock=clock)
    payload = b"p" * (400 - HEADER_BYTES)
    for _ in range(3):
        await log.append(payload)
    clock.now += 1000
    await log.append(payload)
    clock.now = T0 + TTL

    await log.remove_expired()

    assert log.storage_status().oldest_sequence_number == 2
    clock.now = T0 + 1000 + TTL
    await log.remove_expired()
    assert log.storage_status().oldest_sequence_number == 4
    assert log.storage_status().total_bytes == 0
    assert await log.append(payload) == 4
    await log.close()


async def test_sequence_numbers_survive_a_restart_after_everything_expired(tmp_path: Path) -> None:
    clock = Clock()
    log = await StreamLog.create(_definition(time_to_live_millis=TTL), tmp_path / "s", clock=clock)
    for _ in range(5):
        await log.append(b"p" * 100)
    clock.now += TTL
    await log.remove_expired()
    await log.close()

    reopened = await StreamLog.load(tmp_path / "s", clock=clock)

    assert reopened.storage_status().oldest_sequence_number == 5
    assert await reopened.append(b"later") == 5
    await reopened.close()


async def test_memory_streams_write_nothing_and_stay_bounded() -> None:
    log = await StreamLog.create(_definition(persistence=Persistence.Memory), None, clock=Clock())
    for _ in range(20):
        await log.append(b"m" * (400 - HEADER_BYTES))

    status = log.storage_status()
    assert status.total_bytes <= 4096
    assert [number for number, _ in await _read_all(log)] == list(range(status.oldest_sequence_number, 20))


async def test_flush_on_write_syncs_before_append_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fdatasync", synced.append)
    flushed = await StreamLog.create(
        _definition(name="f", flush_on_write=True), tmp_path / "f", clock=Clock()
    )
    lazy = await StreamLog.create(_definition(name="l"), tmp_path / "l", clock=Clock())

    await flushed.append(b"a")
    await lazy.append(b"b")

    assert len(synced) == 1
    await flushed.close()
    await lazy.close()
