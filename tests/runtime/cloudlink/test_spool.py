"""The disk spool on its own: order, persistence across reopening, the byte bound, a damaged file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgewise.runtime.cloudlink import CloudMessage, MessageProperties, MessageTooLargeError
from edgewise.runtime.cloudlink._spool import Spool, message_size


async def _open(path: Path, max_bytes: int = 10_000) -> Spool:
    spool = Spool(path, max_bytes=max_bytes)
    await spool.open()
    return spool


async def test_messages_come_back_in_order_with_their_properties_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "spool" / "spool.db"
    properties = MessageProperties(
        user_properties=(("k", "v"),),
        message_expiry_interval=60,
        correlation_data=b"\xff",
        response_topic="r",
        payload_format=0,
        content_type="c",
    )
    spool = await _open(path)
    first = await spool.add(CloudMessage("a", b"1", 1, True, properties))
    second = await spool.add(CloudMessage("b", b"2", 1))
    third = await spool.add(CloudMessage("c", b"3", 0))
    assert spool.remove(second.id)
    assert not spool.remove(second.id)
    await spool.close()

    reopened = await _open(path)
    entries = list(reopened)
    await reopened.close()
    assert [entry.id for entry in entries] == [first.id, third.id]
    assert entries[0].message == CloudMessage("a", b"1", 1, True, properties)
    assert entries[1].message == CloudMessage("c", b"3", 0)
    assert reopened.size_bytes == first.size + third.size


async def test_the_oldest_messages_make_room_and_are_counted(tmp_path: Path) -> None:
    size = message_size(CloudMessage("t/0", b"x" * 97))
    spool = await _open(tmp_path / "spool.db", max_bytes=size * 3)
    for index in range(5):
        await spool.add(CloudMessage(f"t/{index}", b"x" * 97, 1))
    assert [entry.message.topic for entry in spool] == ["t/2", "t/3", "t/4"]
    assert (spool.dropped, spool.size_bytes) == (2, size * 3)
    with pytest.raises(MessageTooLargeError, match=r"'big' is \d+ bytes"):
        await spool.add(CloudMessage("big", b"x" * (size * 3)))
    await spool.close()
    reopened = await _open(tmp_path / "spool.db", max_bytes=size * 3)
    assert [entry.message.topic for entry in reopened] == ["t/2", "t/3", "t/4"]
    await reopened.close()


async def test_a_damaged_file_is_set_aside_and_the_spool_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    spool = await _open(path)
    assert len(spool) == 0
    await spool.add(CloudMessage("after", b"", 1))
    await spool.close()
    assert [p.name.startswith("spool.db.corrupt-") for p in tmp_path.iterdir()].count(True) == 1
