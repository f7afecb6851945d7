"""Fleet status messages and presence: checked field by field, stored in order, read back (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.cloud.fleet import status
from edgewise.cloud.fleet.worker import FleetStatusWorker, _Report
from edgewise.cloud.registry import service as registry
from edgewise.protocol import health
from tests.cloud.statements import selects_sent


def _health(**fields: Any) -> bytes:
    message: dict[str, Any] = {
        "ggcVersion": "2.12.0",
        "platform": "linux",
        "architecture": "amd64",
        "thing": "sensor-1",
        "overallDeviceStatus": "HEALTHY",
        "sequenceNumber": 1,
        "timestamp": 1_000,
        "messageType": "COMPLETE",
        "trigger": "NUCLEUS_LAUNCH",
        "components": [
            {"componentName": "com.example.A", "version": "1.0.0", "status": "RUNNING", "isRoot": True},
            {"componentName": "com.example.B", "version": "2.0.0", "status": "RUNNING", "isRoot": False},
        ],
    }
    message.update(fields)
    return json.dumps({key: value for key, value in message.items() if value is not None}).encode()


@pytest.fixture
def thing(session: Session) -> str:
    registry.create_thing(session, "sensor-1")
    return "sensor-1"


def test_a_complete_message_replaces_the_components_and_a_partial_one_updates_those_it_names(
    session: Session, thing: str
) -> None:
    assert status.record_health(session, thing, status.parse_health(_health()))
    partial = _health(
        messageType="PARTIAL",
        timestamp=2_000,
        overallDeviceStatus="UNHEALTHY",
        components=[
            {
                "componentName": "com.example.B",
                "version": "2.0.0",
                "status": "BROKEN",
                "componentStatusDetails": {"statusCodes": ["RUN_ERROR"], "statusReason": "exit 1"},
            }
        ],
        deploymentInformation={"status": "FAILED", "deploymentId": "d1"},
    )
    assert status.record_health(session, thing, status.parse_health(partial))
    device = status.get_core_device(session, thing)
    assert device.status.overall_status == "UNHEALTHY"
    assert device.status.components["com.example.A"]["status"] == "RUNNING"
    assert device.status.components["com.example.B"]["status"] == "BROKEN"
    assert device.status.deployment == {"status": "FAILED", "deploymentId": "d1"}

    complete = _health(timestamp=3_000, components=[{"componentName": "com.example.C", "status": "RUNNING"}])
    assert status.record_health(session, thing, status.parse_health(complete))
    assert set(status.get_core_device(session, thing).status.components) == {"com.example.C"}


def test_the_chunks_of_a_split_complete_message_add_up(session: Session, thing: str) -> None:
    status.record_health(session, thing, status.parse_health(_health(timestamp=1)))
    first = _health(
        timestamp=7, components=[{"componentName": "x"}], chunkInfo={"chunkId": 1, "totalChunks": 2}
    )
    second = _health(
        timestamp=7, components=[{"componentName": "y"}], chunkInfo={"chunkId": 2, "totalChunks": 2}
    )
    assert status.record_health(session, thing, status.parse_health(first))
    assert status.record_health(session, thing, status.parse_health(second))
    assert set(status.get_core_device(session, thing).status.components) == {"x", "y"}


def test_a_message_that_loses_the_race_to_create_the_row_is_still_stored(
    session: Session, thing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert status.record_presence(session, thing, health.PresenceMessage(connected=True, timestamp=5))
    session.expunge_all()
    real_get = session.get
    calls: list[object] = []

    def stale_get(*args: Any, **kwargs: Any) -> Any:
        # The first look happens before the other writer's row is committed: it sees none.
        calls.append(args)
        return None if len(calls) == 1 else real_get(*args, **kwargs)

    monkeypatch.setattr(session, "get", stale_get)
    assert status.record_health(session, thing, status.parse_health(_health(overallDeviceStatus="UNHEALTHY")))
    monkeypatch.undo()
    stored = status.get_core_device(session, thing).status
    assert stored.connected is True
    assert stored.overall_status == "UNHEALTHY"


def test_a_message_older_than_the_stored_one_is_ignored(session: Session, thing: str) -> None:
    assert status.record_health(session, thing, status.parse_health(_health(timestamp=5_000)))
    late = _health(timestamp=4_000, overallDeviceStatus="UNHEALTHY")
    assert not status.record_health(session, thing, status.parse_health(late))
    assert status.get_core_device(session, thing).status.overall_status == "HEALTHY"

    assert status.record_presence(session, thing, health.PresenceMessage(connected=False, timestamp=9))
    assert not status.record_presence(session, thing, health.PresenceMessage(connected=True, timestamp=8))
    assert status.get_core_device(session, thing).status.connected is False
    # The same connection's online message arriving after its will changes nothing.
    assert not status.record_presence(session, thing, health.PresenceMessage(connected=True, timestamp=9))
    assert status.record_presence(session, thing, health.PresenceMessage(connected=True, timestamp=10))
    assert status.record_presence(session, thing, health.PresenceMessage(connected=False, timestamp=10))
    assert status.get_core_device(session, thing).status.connected is False


def test_devices_are_listed_by_status_and_connectivity(session: Session) -> None:
    for name, overall, connected in (
        ("a", "HEALTHY", True),
        ("b", "UNHEALTHY", True),
        ("c", "HEALTHY", False),
    ):
        registry.create_thing(session, name)
        status.record_health(session, name, status.parse_health(_health(overallDeviceStatus=overall)))
        status.record_presence(session, name, health.PresenceMessage(connected=connected, timestamp=1))
    assert [d.thing_name for d in status.list_core_devices(session).items] == ["a", "b", "c"]
    assert [d.thing_name for d in status.list_core_devices(session, status="HEALTHY").items] == ["a", "c"]
    assert [d.thing_name for d in status.list_core_devices(session, connected=True).items] == ["a", "b"]
    assert [d.thing_name for d in status.list_core_devices(session, limit=1, offset=1).items] == ["b"]


def test_an_unknown_thing_is_not_found_and_nothing_is_stored(session: Session) -> None:
    with pytest.raises(NotFoundError):
        status.record_health(session, "ghost", status.parse_health(_health()))
    assert status.list_core_devices(session).total == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "payload"),
        (b"[]", "payload"),
        (_health(overallDeviceStatus="FINE"), "overallDeviceStatus"),
        (_health(overallDeviceStatus=None), "overallDeviceStatus"),
        (_health(messageType="SOME"), "messageType"),
        (_health(timestamp="yesterday"), "timestamp"),
        (_health(timestamp=-1), "timestamp"),
        (_health(timestamp=True), "timestamp"),
        (_health(components={"a": 1}), "components"),
        (_health(components=[5]), "components[0]"),
        (_health(components=[{"version": "1.0.0"}]), "componentName"),
        (_health(components=[{"componentName": ""}]), "components[0].componentName"),
        (_health(components=[{"componentName": "a", "isRoot": "yes"}]), "components[0].isRoot"),
        (_health(components=[{"componentName": "a", "requestedVersion": 2}]), "requestedVersion"),
        (
            _health(components=[{"componentName": "a", "componentStatusDetails": []}]),
            "componentStatusDetails",
        ),
        (_health(deploymentInformation="done"), "deploymentInformation"),
        (_health(ggcVersion=2), "ggcVersion"),
        (_health(chunkInfo=[1]), "chunkInfo"),
        (_health(chunkInfo={"chunkId": 0, "totalChunks": 1}), "chunkInfo.chunkId"),
        (_health(chunkInfo={"chunkId": 3, "totalChunks": 2}), "chunkInfo.chunkId"),
        (_health(chunkInfo={"chunkId": 1}), "chunkInfo.totalChunks"),
    ],
)
def test_a_bad_health_message_names_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(InvalidRequestError, match=field.replace("[", r"\[").replace("]", r"\]")):
        status.parse_health(payload)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"{", "payload"),
        (b'{"state": "away", "timestamp": 1}', "state"),
        (b'{"state": "online"}', "timestamp"),
        (b'{"state": "online", "timestamp": 1.5}', "timestamp"),
    ],
)
def test_a_bad_presence_message_names_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(InvalidRequestError, match=field):
        status.parse_presence(payload)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_health_like = st.fixed_dictionaries(
    {},
    optional={
        "overallDeviceStatus": st.sampled_from(["HEALTHY", "UNHEALTHY", "x"]) | _json,
        "messageType": st.sampled_from(["COMPLETE", "PARTIAL"]) | _json,
        "timestamp": st.integers(min_value=-5, max_value=2**64) | _json,
        "components": st.lists(
            st.fixed_dictionaries({"componentName": st.text(max_size=5) | _json}, optional={"isRoot": _json}),
            max_size=3,
        )
        | _json,
        "deploymentInformation": _json,
        "platform": _json,
    },
)


@given(st.binary(max_size=64) | _health_like.map(lambda doc: json.dumps(doc).encode()))
def test_parsers_accept_or_name_a_field_for_any_payload(payload: bytes) -> None:
    for parse in (status.parse_health, status.parse_presence):
        try:
            parse(payload)
        except InvalidRequestError as exc:
            error = exc
        else:
            continue
        assert error.field


async def test_the_api_shows_devices_their_components_and_presence(
    admin_api: httpx.AsyncClient, app: Any
) -> None:
    assert (await admin_api.post("/api/v1/things", json={"thingName": "sensor-1"})).status_code == 201
    with app.state.services.sessions() as session:
        status.record_health(
            session, "sensor-1", status.parse_health(_health(overallDeviceStatus="UNHEALTHY"))
        )
        status.record_presence(session, "sensor-1", health.PresenceMessage(connected=True, timestamp=1))

    listed = await admin_api.get("/api/v1/core-devices", params={"status": "UNHEALTHY"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["count"] == 1
    [device] = listed.json()["data"]
    assert device["coreDeviceThingName"] == "sensor-1"
    assert device["coreVersion"] == "2.12.0"
    assert device["connectivity"]["connected"] is True
    healthy = await admin_api.get("/api/v1/core-devices", params={"status": "HEALTHY"})
    assert healthy.json() == {"data": [], "count": 0}

    components = (await admin_api.get("/api/v1/core-devices/sensor-1/installed-components")).json()
    assert [
        (c["componentName"], c["lifecycleState"], c["isRoot"]) for c in components["installedComponents"]
    ] == [
        ("com.example.A", "RUNNING", True),
        ("com.example.B", "RUNNING", False),
    ]

    assert [c.get("requestedVersion") for c in components["installedComponents"]] == [None, None]

    missing = await admin_api.get("/api/v1/core-devices/ghost")
    assert missing.status_code == 404
    assert "ghost" in missing.json()["message"]
    bad = await admin_api.get("/api/v1/core-devices", params={"status": "SICK"})
    assert bad.status_code == 422
    assert "status" in bad.json()["message"]


async def test_the_api_shows_the_requested_version_a_built_in_serves_at_another(
    admin_api: httpx.AsyncClient, app: Any
) -> None:
    assert (await admin_api.post("/api/v1/things", json={"thingName": "sensor-1"})).status_code == 201
    cli = {
        "componentName": "aws.greengrass.Cli",
        "version": "2.12.0",
        "requestedVersion": "2.4.0",
        "status": "RUNNING",
        "isRoot": True,
    }
    with app.state.services.sessions() as session:
        status.record_health(session, "sensor-1", status.parse_health(_health(components=[cli])))

    components = (await admin_api.get("/api/v1/core-devices/sensor-1/installed-components")).json()

    [installed] = components["installedComponents"]
    assert installed["componentName"] == "aws.greengrass.Cli"
    assert installed["componentVersion"] == "2.12.0"
    assert installed["requestedVersion"] == "2.4.0"


def test_a_batch_is_one_transaction_and_one_bad_message_costs_the_others_nothing(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("sensor-1", "sensor-2"):
        registry.create_thing(session, name)
    factory = sessionmaker(bind=session.get_bind(), expire_on_commit=False)
    worker = FleetStatusWorker(factory, BrokerConnection("127.0.0.1", 1883))
    reports = [
        _Report("sensor-1", status.parse_health(_health(timestamp=7))),
        _Report("ghost", health.PresenceMessage(connected=True, timestamp=1)),
        _Report("sensor-2", health.PresenceMessage(connected=True, timestamp=3)),
    ]
    commits: list[object] = []
    event.listen(session.get_bind(), "commit", commits.append)
    with selects_sent(session.get_bind()) as selects:
        stored = worker._store(reports)

    assert [report.thing for report in stored] == ["sensor-1", "sensor-2"]
    assert len(commits) == 1
    assert len(selects) == 1, selects  # the batch's things and their rows, read at once
    first = status.get_core_device(session, "sensor-1").status
    assert (first.status_timestamp, first.overall_status) == (7, "HEALTHY")
    assert status.get_core_device(session, "sensor-2").status.connected is True

    # A failure of the whole transaction: each message is stored on its own, the failing one alone is lost.
    real = status.apply_presence

    def failing(
        session: Session, thing: str, report: health.PresenceMessage, rows: status.StatusRows | None = None
    ) -> bool:
        if thing == "sensor-1":
            raise RuntimeError("the database went away")
        return real(session, thing, report, rows)

    monkeypatch.setattr(status, "apply_presence", failing)
    again = [
        _Report("sensor-1", health.PresenceMessage(connected=True, timestamp=9)),
        _Report("sensor-2", health.PresenceMessage(connected=False, timestamp=3)),
    ]
    assert [report.thing for report in worker._store(again)] == ["sensor-2"]
    session.expire_all()
    assert status.get_core_device(session, "sensor-2").status.connected is False
    assert status.get_core_device(session, "sensor-1").status.connected is None
