"""The cloud's shadow operations on SQLite and PostgreSQL: versions and optimistic locking, deletes that keep the
version numbering, named shadows and their listing, AWS's limits and codes, and the messages REST changes owe."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.orm import Session

from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.shadows import service
from edgewise.protocol.shadow.errors import (
    InvalidShadowRequestError,
    PayloadTooLargeError,
    ShadowNotFoundError,
    ShadowVersionConflictError,
)

T0, T1 = 1_700_000_000, 1_700_000_060


def body(**document: Any) -> bytes:
    return json.dumps(document).encode()


def test_update_get_and_delta_with_metadata_timestamps(session: Session) -> None:
    outcome = service.update_shadow(
        session, "A", None, body(state={"desired": {"color": "red"}}, clientToken="t1"), now=T0
    )
    assert (outcome.accepted["version"], outcome.accepted["clientToken"]) == (1, "t1")
    assert outcome.delta is not None
    assert outcome.delta["state"] == {"color": "red"}

    service.update_shadow(session, "A", "", body(state={"reported": {"color": "red"}}), now=T1)
    document = service.get_shadow(session, "A", None, now=T1)

    assert document["version"] == 2
    assert document["state"] == {"desired": {"color": "red"}, "reported": {"color": "red"}}
    assert document["metadata"] == {
        "desired": {"color": {"timestamp": T0}},
        "reported": {"color": {"timestamp": T1}},
    }


def test_a_stale_version_is_a_409_conflict_and_changes_nothing(session: Session) -> None:
    service.update_shadow(session, "A", None, body(state={"desired": {"x": 1}}), now=T0)
    service.update_shadow(session, "A", None, body(state={"desired": {"x": 2}}, version=1), now=T0)

    with pytest.raises(ShadowVersionConflictError) as refused:
        service.update_shadow(session, "A", None, body(state={"desired": {"x": 3}}, version=1), now=T1)

    assert refused.value.code == 409
    assert service.get_shadow(session, "A", None, now=T1)["state"]["desired"] == {"x": 2}


def test_delete_then_get_is_404_and_numbering_continues(session: Session) -> None:
    service.update_shadow(session, "A", None, body(state={"reported": {"on": True}}), now=T0)
    assert service.delete_shadow(session, "A", None, now=T1) == {"version": 1, "timestamp": T1}

    with pytest.raises(ShadowNotFoundError) as missing:
        service.get_shadow(session, "A", None, now=T1)
    assert missing.value.code == 404
    with pytest.raises(ShadowNotFoundError):
        service.delete_shadow(session, "A", None, now=T1)
    again = service.update_shadow(session, "A", None, body(state={"reported": {"on": False}}), now=T1)
    assert again.shadow.version == 2


def test_named_shadows_are_separate_and_listed_by_page(session: Session) -> None:
    for name in ("gamma", "alpha", "beta"):
        service.update_shadow(session, "A", name, body(state={"reported": {"n": name}}), now=T0)
    service.update_shadow(session, "A", None, body(state={"reported": {"classic": 1}}), now=T0)
    service.update_shadow(session, "B", "other", body(state={"reported": {}}), now=T0)
    service.delete_shadow(session, "A", "beta", now=T0)

    first = service.list_named_shadows(session, "A", page_size=1, now=T1)
    rest = service.list_named_shadows(session, "A", page_size=5, next_token=first.next_token, now=T1)

    assert (first.results, rest.results, rest.next_token) == (["alpha"], ["gamma"], None)
    assert service.get_shadow(session, "A", "alpha", now=T1)["state"]["reported"] == {"n": "alpha"}
    assert service.get_shadow(session, "A", None, now=T1)["state"]["reported"] == {"classic": 1}


def test_limits_and_bad_requests_carry_aws_codes(session: Session) -> None:
    too_big = body(state={"reported": {"blob": "x" * service.MAX_STATE_BYTES}})
    with pytest.raises(PayloadTooLargeError) as large:
        service.update_shadow(session, "A", None, too_big, now=T0)
    assert large.value.code == 413

    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(6):
        deep = {"d": deep}
    with pytest.raises(InvalidShadowRequestError, match="nesting") as nested:
        service.update_shadow(session, "A", None, body(state={"desired": deep}), now=T0)
    assert nested.value.code == 400
    with pytest.raises(InvalidShadowRequestError, match="state"):
        service.update_shadow(session, "A", None, body(version=1), now=T0)
    with pytest.raises(InvalidShadowRequestError, match="thingName"):
        service.get_shadow(session, "no/slash", None, now=T0)
    with pytest.raises(InvalidShadowRequestError, match="shadowName"):
        service.get_shadow(session, "A", "x" * 65, now=T0)
    with pytest.raises(InvalidShadowRequestError, match="nextToken"):
        service.list_named_shadows(session, "A", next_token="%%%", now=T0)


def test_api_changes_leave_their_messages_for_the_worker_once(session: Session) -> None:
    service.update_shadow(session, "A", "cfg", body(state={"desired": {"rate": 5}}), now=T0, from_api=True)
    service.update_shadow(session, "A", None, body(state={"reported": {"ok": 1}}), now=T0)
    service.delete_shadow(session, "A", "cfg", now=T1, from_api=True)

    topics = [topic for topic, _document in service.take_unpublished(session)]

    prefix = "$aws/things/A/shadow/name/cfg"
    assert topics == [
        f"{prefix}/update/accepted",
        f"{prefix}/update/documents",
        f"{prefix}/update/delta",
        f"{prefix}/delete/accepted",
    ]
    assert service.take_unpublished(session) == []


def test_concurrent_updates_of_one_version_accept_exactly_one(database_url: str) -> None:
    engine = create_database_engine(database_url)
    sessions = create_session_factory(engine)
    with sessions() as session:
        service.update_shadow(session, "A", None, body(state={"reported": {"n": 0}}), now=T0)

    def update(n: int) -> str:
        with sessions() as session:
            try:
                service.update_shadow(
                    session, "A", None, body(state={"reported": {"n": n}}, version=1), now=T1
                )
            except ShadowVersionConflictError:
                return "conflict"
            return "accepted"

    try:
        with ThreadPoolExecutor(4) as pool:
            outcomes = sorted(pool.map(update, range(1, 9)))
        with sessions() as session:
            final = service.get_shadow(session, "A", None, now=T1)
    finally:
        engine.dispose()

    assert outcomes == ["accepted"] + ["conflict"] * 7
    assert final["version"] == 2
