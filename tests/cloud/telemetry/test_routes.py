"""The telemetry API: messages with their payload encodings and cursors, streams, series, retention by role, and
every bad parameter answered with 422 naming it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from edgewise.cloud.telemetry import TelemetryRecord, store_records

ApiClientFactory = Callable[[str | None], httpx.AsyncClient]
T0 = 1_764_100_000_000
MINUTE = 60_000


def store(app: FastAPI, *records: TelemetryRecord) -> None:
    with app.state.services.sessions() as session:
        store_records(session, list(records))
        session.commit()


def reading(
    offset_ms: int, payload: Any, *, thing: str = "pump-1", stream: str = "line", **extra: Any
) -> TelemetryRecord:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return TelemetryRecord(thing, stream, T0 + offset_ms, raw, **extra)


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get(f"/api/v1/telemetry/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def token(admin_api: httpx.AsyncClient, name: str, role: str) -> str:
    response = await admin_api.post("/api/v1/tokens", json={"name": name, "role": role})
    assert response.status_code == 201, response.text
    secret: str = response.json()["token"]
    return secret


async def test_messages_carry_json_payloads_as_json_and_others_as_base64(
    app: FastAPI, admin_api: httpx.AsyncClient
) -> None:
    store(
        app,
        reading(0, {"t": 21.5}, sequence_number=7),
        reading(1, b"\x00\xffraw", stream="dt/pump-1/raw", topic="dt/pump-1/raw"),
    )
    page = await get(admin_api, "messages")
    assert (page["order"], page["more"], page["cursor"]) == ("oldest", False, page["data"][-1]["id"])
    first, second = page["data"]
    assert {key: first[key] for key in ("thing", "stream", "topic", "sequenceNumber", "timestamp")} == {
        "thing": "pump-1",
        "stream": "line",
        "topic": None,
        "sequenceNumber": 7,
        "timestamp": T0,
    }
    assert (first["encoding"], first["isJson"], first["payload"]) == ("json", True, {"t": 21.5})
    assert (second["encoding"], second["isJson"]) == ("base64", False)
    assert base64.b64decode(second["payload"]) == b"\x00\xffraw"
    assert second["topic"] == "dt/pump-1/raw"
    raw = await get(admin_api, "messages", payloadEncoding="base64", limit=1)
    assert raw["more"] is True
    assert (raw["data"][0]["encoding"], raw["data"][0]["isJson"]) == ("base64", True)
    assert json.loads(base64.b64decode(raw["data"][0]["payload"])) == {"t": 21.5}


async def test_messages_page_with_cursors_and_filter_by_time(
    app: FastAPI, admin_api: httpx.AsyncClient
) -> None:
    store(app, *(reading(offset * 1000, {"n": offset}) for offset in range(5)))
    page = await get(admin_api, "messages", limit=2)
    rest = await get(admin_api, "messages", after=page["cursor"], limit=10)
    assert [m["payload"]["n"] for m in page["data"] + rest["data"]] == [0, 1, 2, 3, 4]
    newest = await get(admin_api, "messages", order="newest", limit=2)
    assert [m["payload"]["n"] for m in newest["data"]] == [4, 3]
    older = await get(admin_api, "messages", order="newest", before=newest["cursor"])
    assert [m["payload"]["n"] for m in older["data"]] == [2, 1, 0]
    iso = "2025-11-25T19:46:41Z"  # T0 + 1 s
    ranged = await get(admin_api, "messages", since=iso, until=str(T0 + 3000))
    assert [m["payload"]["n"] for m in ranged["data"]] == [1, 2]


async def test_streams_are_listed_with_totals(app: FastAPI, admin_api: httpx.AsyncClient) -> None:
    store(app, reading(0, b"abc"), reading(10, b"de", thing="pump-2"), reading(5, b"z", stream="alpha"))
    listing = await get(admin_api, "streams")
    assert listing["count"] == 2
    assert listing["data"] == [
        {
            "stream": "alpha",
            "messages": 1,
            "bytes": 1,
            "firstTimestamp": T0 + 5,
            "lastTimestamp": T0 + 5,
            "things": 1,
        },
        {
            "stream": "line",
            "messages": 2,
            "bytes": 5,
            "firstTimestamp": T0,
            "lastTimestamp": T0 + 10,
            "things": 2,
        },
    ]
    only = await get(admin_api, "streams", thing="pump-2")
    assert [(s["stream"], s["messages"]) for s in only["data"]] == [("line", 1)]


async def test_a_series_downsamples_a_field(app: FastAPI, admin_api: httpx.AsyncClient) -> None:
    store(
        app,
        reading(0, {"m": [3]}),
        reading(1000, {"m": [5]}),
        reading(2 * MINUTE, {"m": [10]}),
        reading(3000, {"m": ["x"]}),
    )
    series = await get(
        admin_api,
        "series",
        stream="line",
        field="m[0]",
        since=str(T0),
        until=str(T0 + 3 * MINUTE),
        every="1m",
        stat="max",
    )
    assert {key: series[key] for key in ("field", "since", "until", "every", "stat", "skipped", "thing")} == {
        "field": "m[0]",
        "since": T0,
        "until": T0 + 3 * MINUTE,
        "every": MINUTE,
        "stat": "max",
        "skipped": 1,
        "thing": None,
    }
    assert series["buckets"] == [
        {"start": T0, "count": 2, "mean": 4.0, "min": 3.0, "max": 5.0, "value": 5.0},
        {"start": T0 + 2 * MINUTE, "count": 1, "mean": 10.0, "min": 10.0, "max": 10.0, "value": 10.0},
    ]


async def test_a_series_until_defaults_to_now(admin_api: httpx.AsyncClient) -> None:
    series = await get(
        admin_api, "series", stream="line", field="v", since="2026-12-01T00:00:00Z", every="1h"
    )
    assert series["until"] > series["since"]
    assert series["buckets"] == []


@pytest.mark.parametrize(
    ("path", "params", "field", "problem"),
    [
        ("messages", {"since": "soon"}, "since", "is neither milliseconds"),
        ("messages", {"until": "-3"}, "until", "is outside"),
        ("messages", {"since": "10", "until": "10"}, "until", "must be after since"),
        ("messages", {"limit": "0"}, "limit", ""),
        ("messages", {"limit": "10001"}, "limit", ""),
        ("messages", {"after": "-1"}, "after", ""),
        ("messages", {"order": "random"}, "order", ""),
        ("messages", {"thing": "bad name!"}, "thing", ""),
        ("messages", {"stream": "a\tb"}, "stream", ""),
        ("messages", {"payloadEncoding": "hex"}, "payloadEncoding", ""),
        ("messages", {"bogus": "1"}, "bogus", "is not a query parameter"),
        ("streams", {"since": "2026-02-30"}, "since", "is neither"),
        ("streams", {"limit": "1001"}, "limit", ""),
        ("series", {"field": "v", "since": "0", "every": "1m"}, "stream", "Field required"),
        ("series", {"stream": "s", "field": "a..b", "since": "0", "every": "1m"}, "field", "at position 3"),
        (
            "series",
            {"stream": "s", "field": "v", "since": "0", "every": "0s"},
            "every",
            "must be between 1ms",
        ),
        (
            "series",
            {"stream": "s", "field": "v", "since": "0", "every": "1 minute"},
            "every",
            "should match pattern",
        ),
        (
            "series",
            {"stream": "s", "field": "v", "since": "0", "until": "10001", "every": "1ms"},
            "every",
            "makes 10001 buckets",
        ),
        ("series", {"stream": "s", "field": "v", "since": "0", "every": "1m", "stat": "median"}, "stat", ""),
        ("series", {"stream": "s", "field": "v", "every": "1m"}, "since", "Field required"),
    ],
)
async def test_bad_parameters_are_422_naming_them(
    admin_api: httpx.AsyncClient, path: str, params: dict[str, str], field: str, problem: str
) -> None:
    response = await admin_api.get(f"/api/v1/telemetry/{path}", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_request"
    assert repr(field) in body["message"]
    assert problem in body["message"]


async def test_retention_is_read_by_any_role_and_written_by_admins(
    api_client: ApiClientFactory, admin_api: httpx.AsyncClient
) -> None:
    viewer, operator = (
        await token(admin_api, "viewer", "read-only"),
        await token(admin_api, "ops", "operator"),
    )
    body = {"maxAgeSeconds": 3600, "maxBytes": 1000}
    async with api_client(viewer) as client:
        assert (await client.get("/api/v1/telemetry/messages")).status_code == 200
        assert (await client.put("/api/v1/telemetry/retention/line", json=body)).status_code == 403
    async with api_client(operator) as client:
        refused = await client.put("/api/v1/telemetry/retention/line", json=body)
        assert refused.status_code == 403
        assert "needs admin access" in refused.json()["message"]
    response = await admin_api.put("/api/v1/telemetry/retention/dt/pump-1/temp", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["stream"] == "dt/pump-1/temp"
    assert (await admin_api.put("/api/v1/telemetry/retention/line", json={"maxBytes": 5})).status_code == 200
    async with api_client(viewer) as client:
        listing = (await client.get("/api/v1/telemetry/retention")).json()
    assert listing["defaultMaxAgeSeconds"] is None
    assert [(r["stream"], r["maxAgeSeconds"], r["maxBytes"]) for r in listing["data"]] == [
        ("dt/pump-1/temp", 3600, 1000),
        ("line", None, 5),
    ]
    assert (await admin_api.delete("/api/v1/telemetry/retention/dt/pump-1/temp")).status_code == 204
    missing = await admin_api.delete("/api/v1/telemetry/retention/dt/pump-1/temp")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Retention of stream 'dt/pump-1/temp' does not exist"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"maxAgeSeconds": 0}, "maxAgeSeconds"),
        ({"maxBytes": -1}, "maxBytes"),
        ({"maxBytes": 2**61}, "maxBytes"),
        ({"maxAgeSeconds": "week"}, "maxAgeSeconds"),
        ({"maxAge": 5}, "maxAge"),
    ],
)
async def test_bad_retention_is_422_naming_the_field(
    admin_api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await admin_api.put("/api/v1/telemetry/retention/line", json=body)
    assert response.status_code == 422, response.text
    assert repr(field) in response.json()["message"]
    assert (await admin_api.get("/api/v1/telemetry/retention")).json()["data"] == []


async def test_retention_of_an_overlong_stream_name_is_refused(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.put("/api/v1/telemetry/retention/" + "s" * 257, json={"maxBytes": 5})
    assert response.status_code == 422
    assert "'stream'" in response.json()["message"]
