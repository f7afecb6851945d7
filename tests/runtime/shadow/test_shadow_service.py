"""The shadow service on a real SQLite database and the real local bus."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgewise.runtime.pubsub import PubSubBus, PubSubMessage
from edgewise.runtime.shadow import (
    InvalidShadowRequestError,
    PayloadTooLargeError,
    ShadowNotFoundError,
    ShadowService,
    ShadowVersionConflictError,
)

THING = "device-1"


def _body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


class Clock:
    """A clock the test moves by hand, so timestamps are known."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.5

    def __call__(self) -> float:
        return self.now


class Heard:
    """Everything the bus delivered to one subscription, decoded."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Any]] = []

    def __call__(self, message: PubSubMessage) -> None:
        assert isinstance(message.payload, bytes), "shadow documents are sent as binary messages"
        self.messages.append((message.topic, json.loads(message.payload)))

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.messages]

    def on(self, suffix: str) -> list[Any]:
        return [document for topic, document in self.messages if topic.endswith(suffix)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus() -> PubSubBus:
    return PubSubBus()


@pytest.fixture
async def shadows(tmp_path: Path, bus: PubSubBus, clock: Clock) -> AsyncIterator[ShadowService]:
    service = ShadowService(
        tmp_path / "shadows" / "shadows.db",
        publish=lambda topic, payload: bus.publish(topic, payload, source="aws.greengrass.ShadowManager"),
        clock=clock,
    )
    await service.open()
    yield service
    await service.close()


async def test_update_then_get_returns_the_document_with_its_delta(shadows: ShadowService) -> None:
    accepted = await shadows.update_shadow(THING, "", _body({"state": {"desired": {"on": True}}}))
    document = await shadows.get_shadow(THING, "")

    assert accepted["version"] == 1
    assert document["state"] == {"desired": {"on": True}, "delta": {"on": True}}
    assert document["metadata"] == {"desired": {"on": {"timestamp": 1_700_000_000}}}
    assert document["version"] == 1


async def test_named_and_classic_shadows_are_separate(shadows: ShadowService) -> None:
    await shadows.update_shadow(THING, "", _body({"state": {"reported": {"which": "classic"}}}))
    await shadows.update_shadow(THING, "config", _body({"state": {"reported": {"which": "named"}}}))

    assert (await shadows.get_shadow(THING, ""))["state"]["reported"] == {"which": "classic"}
    assert (await shadows.get_shadow(THING, "config"))["state"]["reported"] == {"which": "named"}


async def test_missing_shadow_is_not_found(shadows: ShadowService) -> None:
    with pytest.raises(ShadowNotFoundError) as caught:
        await shadows.get_shadow(THING, "nothing")

    assert caught.value.code == 404
    assert "nothing" in caught.value.message


async def test_delete_returns_the_version_and_a_later_update_continues_numbering(
    shadows: ShadowService, clock: Clock
) -> None:
    for value in range(3):
        await shadows.update_shadow(THING, "s", _body({"state": {"reported": {"v": value}}}))
    clock.now += 10

    deleted = await shadows.delete_shadow(THING, "s")

    assert deleted == {"version": 3, "timestamp": 1_700_000_010}
    with pytest.raises(ShadowNotFoundError):
        await shadows.get_shadow(THING, "s")
    with pytest.raises(ShadowNotFoundError):
        await shadows.delete_shadow(THING, "s")
    recreated = await shadows.update_shadow(THING, "s", _body({"state": {"reported": {"v": 9}}}))
    assert recreated["version"] == 4
    assert (await shadows.get_shadow(THING, "s"))["state"] == {"reported": {"v": 9}}


async def test_version_conflict_leaves_the_shadow_unchanged(shadows: ShadowService) -> None:
    await shadows.update_shadow(THING, "", _body({"state": {"desired": {"a": 1}}}))

    with pytest.raises(ShadowVersionConflictError):
        await shadows.update_shadow(THING, "", _body({"state": {"desired": {"a": 2}}, "version": 5}))

    document = await shadows.get_shadow(THING, "")
    assert document["state"]["desired"] == {"a": 1}
    assert document["version"] == 1


async def test_shadows_survive_reopening_the_database(tmp_path: Path) -> None:
    database = tmp_path / "shadows.db"
    first = ShadowService(database)
    await first.open()
    await first.update_shadow(THING, "kept", _body({"state": {"reported": {"temperature": 21.5}}}))
    await first.close()

    second = ShadowService(database)
    await second.open()
    try:
        document = await second.get_shadow(THING, "kept")
    finally:
        await second.close()

    assert document["state"]["reported"] == {"temperature": 21.5}
    assert document["version"] == 1


async def test_database_is_wal_and_rows_start_unsynced_for_the_future_cloud_sync(
    shadows: ShadowService, tmp_path: Path
) -> None:
    await shadows.update_shadow(THING, "", _body({"state": {"reported": {"a": 1}}}))

    with sqlite3.connect(tmp_path / "shadows" / "shadows.db") as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        row = db.execute(
            "SELECT version, deleted, synced_version, cloud_version, updated_at FROM shadows "
            "WHERE thing_name = ? AND shadow_name = ''",
            (THING,),
        ).fetchone()

    assert mode == "wal"
    assert row == (1, 0, None, None, 1_700_000_000.5)


async def test_concurrent_updates_are_applied_one_at_a_time(shadows: ShadowService) -> None:
    await asyncio.gather(
        *(shadows.update_shadow(THING, "", _body({"state": {"reported": {f"k{n}": n}}})) for n in range(40))
    )

    document = await shadows.get_shadow(THING, "")
    assert document["version"] == 40
    assert document["state"]["reported"] == {f"k{n}": n for n in range(40)}


async def test_size_limit_comes_from_the_callable(tmp_path: Path) -> None:
    limit = [8192]
    service = ShadowService(tmp_path / "s.db", size_limit=lambda: limit[0])
    await service.open()
    try:
        await service.update_shadow(THING, "", _body({"state": {"reported": {"a": "x" * 200}}}))
        limit[0] = 100
        with pytest.raises(PayloadTooLargeError):
            await service.update_shadow(THING, "", _body({"state": {"reported": {"b": 1}}}))
    finally:
        await service.close()


async def test_listing_pages_through_named_shadows_in_name_order(shadows: ShadowService) -> None:
    await shadows.update_shadow(THING, "", _body({"state": {"reported": {"classic": True}}}))
    for name in ("e", "a", "d", "c", "b"):
        await shadows.update_shadow(THING, name, _body({"state": {"reported": {"n": name}}}))
    await shadows.update_shadow("other-thing", "z", _body({"state": {"reported": {"n": 1}}}))
    await shadows.delete_shadow(THING, "c")

    first = await shadows.list_named_shadows(THING, page_size=2)
    second = await shadows.list_named_shadows(THING, page_size=2, next_token=first.next_token)

    assert first.names == ["a", "b"]
    assert second.names == ["d", "e"]
    assert second.next_token is None
    assert (await shadows.list_named_shadows(THING)).names == ["a", "b", "d", "e"]
    assert (await shadows.list_named_shadows("no-shadows")).names == []


@pytest.mark.parametrize(
    ("page_size", "token", "field"),
    [
        (0, None, "pageSize"),
        (101, None, "pageSize"),
        (True, None, "pageSize"),
        (5, "%%%", "nextToken"),
        (5, "aGFzIHNwYWNl", "nextToken"),  # base64 of "has space", not a shadow name
    ],
)
async def test_listing_rejects_bad_page_sizes_and_tokens(
    shadows: ShadowService, page_size: Any, token: str | None, field: str
) -> None:
    with pytest.raises(InvalidShadowRequestError, match=field):
        await shadows.list_named_shadows(THING, page_size=page_size, next_token=token)


async def test_update_publishes_accepted_delta_and_documents_on_the_bus(
    shadows: ShadowService, bus: PubSubBus
) -> None:
    heard = Heard()
    bus.subscribe(f"$aws/things/{THING}/shadow/name/lamp/#", heard)

    await shadows.update_shadow(
        THING, "lamp", _body({"state": {"desired": {"on": True}}, "clientToken": "c1"})
    )
    await shadows.update_shadow(THING, "lamp", _body({"state": {"reported": {"on": True}}}))

    prefix = f"$aws/things/{THING}/shadow/name/lamp"
    assert heard.topics() == [
        f"{prefix}/update/accepted",
        f"{prefix}/update/delta",
        f"{prefix}/update/documents",
        f"{prefix}/update/accepted",
        f"{prefix}/update/documents",
    ]
    delta = heard.on("/update/delta")[0]
    assert delta["state"] == {"on": True}
    assert delta["clientToken"] == "c1"
    last = heard.on("/update/documents")[-1]
    assert last["previous"]["version"] == 1
    assert last["current"]["state"] == {"desired": {"on": True}, "reported": {"on": True}}


async def test_get_and_delete_publish_accepted_and_errors_publish_rejected(
    shadows: ShadowService, bus: PubSubBus
) -> None:
    heard = Heard()
    bus.subscribe(f"$aws/things/{THING}/shadow/#", heard)
    await shadows.update_shadow(THING, "", _body({"state": {"reported": {"a": 1}}}))

    await shadows.get_shadow(THING, "")
    with pytest.raises(ShadowVersionConflictError):
        await shadows.update_shadow(THING, "", _body({"state": {}, "version": 9, "clientToken": "tok"}))
    await shadows.delete_shadow(THING, "")
    with pytest.raises(ShadowNotFoundError):
        await shadows.get_shadow(THING, "")

    prefix = f"$aws/things/{THING}/shadow"
    assert heard.topics()[2:] == [
        f"{prefix}/get/accepted",
        f"{prefix}/update/rejected",
        f"{prefix}/delete/accepted",
        f"{prefix}/get/rejected",
    ]
    rejected = heard.on("/update/rejected")[0]
    assert rejected["code"] == 409
    assert rejected["clientToken"] == "tok"
    assert heard.on("/get/rejected")[0]["code"] == 404
    assert heard.on("/delete/accepted")[0]["version"] == 1


async def test_invalid_names_are_refused_before_touching_the_store(shadows: ShadowService) -> None:
    with pytest.raises(InvalidShadowRequestError, match="thingName"):
        await shadows.update_shadow("bad/thing", "", _body({"state": {}}))
    with pytest.raises(InvalidShadowRequestError, match="shadowName"):
        await shadows.get_shadow(THING, "#")
