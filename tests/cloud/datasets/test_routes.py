"""The datasets API on the in-process app: a dataset built from stored telemetry (resampled, windowed, labelled)
described and downloaded, an uploaded CSV, and every refusal naming what is wrong."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from fastapi import FastAPI

from edgewise.cloud.app import create_app, initialize
from edgewise.cloud.telemetry import TelemetryRecord, store_records
from edgewise.cloud.training.models import TrainingJob, TrainingStatus
from edgewise.ml.datasets import read_dataset

ApiClientFactory = Callable[[str | None], httpx.AsyncClient]
T0 = 1_764_100_000_000
SECOND = 1000


def store(app: FastAPI, *records: TelemetryRecord) -> None:
    with app.state.services.sessions() as session:
        store_records(session, list(records))
        session.commit()


def reading(
    offset_ms: int, payload: Any, *, thing: str = "pump-1", topic: str = "dt/pump-1/reading"
) -> TelemetryRecord:
    return TelemetryRecord(thing, topic, T0 + offset_ms, json.dumps(payload).encode(), topic=topic)


def pump_series(app: FastAPI) -> None:
    """Two pumps, 40 s each: two readings a second, and one payload that is not JSON."""
    records = []
    for thing in ("pump-1", "pump-2"):
        topic = f"dt/{thing}/reading"
        for half in range(80):
            value = half // 2 + (100 if thing == "pump-2" else 0)
            records.append(
                reading(half * 500, {"sensors": {"temp": value}, "rpm": 2 * value}, thing=thing, topic=topic)
            )
    records.append(
        TelemetryRecord("pump-1", "dt/pump-1/reading", T0 + 100, b"\x00not json", topic="dt/pump-1/reading")
    )
    records.append(reading(0, {"sensors": {"temp": 1}}, thing="fan-1", topic="dt/fan-1/other"))
    store(app, *records)


WINDOWED = {
    "name": "pumps-windows",
    "selection": {"topics": ["dt/+/reading"], "since": T0, "until": "2025-11-25T20:00:00Z"},
    "fields": ["temp=sensors.temp", "rpm"],
    "resample": "1s",
    "window": {"size": 10, "step": 5, "features": ["mean", "max", "slope"]},
    "label": {"anomalousRanges": [[T0 + 30 * SECOND, T0 + 40 * SECOND]]},
}


async def create(api: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await api.post("/api/v1/datasets", json=body)


async def test_a_dataset_from_telemetry_is_resampled_windowed_labelled_and_read_back(
    app: FastAPI, admin_api: httpx.AsyncClient
) -> None:
    pump_series(app)
    response = await create(admin_api, WINDOWED)
    assert response.status_code == 201, response.text
    created = response.json()
    # 40 one-second buckets per pump; windows of 10 every 5: starts 0, 5, ..., 30 -> 7 per pump.
    assert (created["name"], created["kind"], created["rows"]) == ("pumps-windows", "telemetry", 14)
    assert created["source"]["selection"]["until"] == 1_764_100_800_000
    assert created["source"]["messages"] == 161
    assert created["spec"]["resampleMs"] == 1000
    described = (await admin_api.get("/api/v1/datasets/pumps-windows")).json()
    assert described == created
    names = [column["name"] for column in described["summary"]["columns"]]
    assert names == [
        "thing", "timestamp", "temp__mean", "temp__max", "temp__slope", "rpm__mean", "rpm__max", "rpm__slope", "label"
    ]  # fmt: skip
    assert described["summary"]["things"] == ["pump-1", "pump-2"]

    download = await admin_api.get("/api/v1/datasets/pumps-windows/data")
    assert download.status_code == 200
    assert download.headers["etag"] == f'"{created["sha256"]}"'
    table, spec, source = read_dataset(download.content)
    assert spec is not None
    assert spec.window is not None
    assert spec.window.size == 10
    assert source["kind"] == "telemetry"
    rows = table.to_pylist()
    first_pump_1 = rows[0]
    assert first_pump_1["thing"] == "pump-1"
    assert first_pump_1["temp__mean"] == pytest.approx(4.5)  # seconds 0..9 hold 0..9
    assert first_pump_1["temp__slope"] == pytest.approx(1.0)
    assert first_pump_1["rpm__max"] == pytest.approx(18.0)
    # Windows reaching into [30 s, 40 s) are anomalous: those starting at 25 and 30 s.
    assert [row["label"] for row in rows if row["thing"] == "pump-1"] == [0, 0, 0, 0, 0, 1, 1]

    listing = (await admin_api.get("/api/v1/datasets")).json()
    assert listing["count"] == 1
    assert listing["data"][0]["columns"] == 9


async def test_a_duplicate_name_is_409_and_a_bad_request_is_422_naming_the_field(
    app: FastAPI, admin_api: httpx.AsyncClient
) -> None:
    pump_series(app)
    plain = {"name": "plain", "fields": ["sensors.temp"], "selection": {"things": ["pump-1"]}}
    assert (await create(admin_api, plain)).status_code == 201
    duplicate = await create(admin_api, plain)
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "already_exists")

    missing = await create(admin_api, {**plain, "name": "missing", "fields": ["pressure=a.pressure"]})
    assert missing.status_code == 422
    assert "pressure" in missing.json()["message"]
    assert "a.pressure" in missing.json()["message"]

    bad_path = await create(admin_api, {**plain, "name": "bad-path", "fields": ["t=sensors..temp"]})
    assert bad_path.status_code == 422
    assert "fields[0]" in bad_path.json()["message"]

    nothing = await create(admin_api, {**plain, "name": "nothing", "selection": {"things": ["pump-9"]}})
    assert nothing.status_code == 422
    assert "'selection'" in nothing.json()["message"]
    assert "pump-9" in nothing.json()["message"]

    window_only = await create(admin_api, {**plain, "name": "window", "window": {"size": 4, "step": 2}})
    assert window_only.status_code == 422
    assert "window" in window_only.json()["message"]
    assert "resample" in window_only.json()["message"]

    bad_time = await create(admin_api, {**plain, "name": "bad-time", "selection": {"since": "yesterday"}})
    assert bad_time.status_code == 422
    assert "selection.since" in bad_time.json()["message"]

    bad_name = await create(admin_api, {**plain, "name": "no spaces"})
    assert bad_name.status_code == 422
    assert "name" in bad_name.json()["message"]


async def test_a_selection_over_the_row_limit_is_refused(tmp_path: Path) -> None:
    start = initialize(tmp_path / "small", dataset_max_rows=100)
    small = create_app(start.settings)
    try:
        pump_series(small)
        transport = httpx.ASGITransport(app=small)
        headers = {"Authorization": f"Bearer {start.admin_token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud", headers=headers) as api:
            response = await create(api, {"name": "big", "fields": ["sensors.temp"]})
            wildcard = await create(
                api, {"name": "big", "fields": ["sensors.temp"], "selection": {"topics": ["#"]}}
            )
    finally:
        small.state.services.engine.dispose()
    for refused in (response, wildcard):
        assert refused.status_code == 422
        assert "dataset_max_rows" in refused.json()["message"]
        assert "more than the 100" in refused.json()["message"]


def _csv(rows: list[dict[str, Any]]) -> bytes:
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_pylist(rows), sink)
    return bytes(sink.getvalue().to_pybytes())


async def test_an_uploaded_csv_becomes_a_dataset_and_deleting_follows_the_rules(
    app: FastAPI, admin_api: httpx.AsyncClient, api_client: ApiClientFactory
) -> None:
    data = _csv([{"timestamp": T0 + index, "x": float(index), "y": index % 2} for index in range(20)])
    response = await admin_api.put(
        "/api/v1/datasets/upload/file", params={"fileName": "readings.csv"}, content=data
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()
    assert (uploaded["kind"], uploaded["rows"], uploaded["spec"]) == ("file", 20, None)
    assert uploaded["source"] == {"kind": "file", "fileName": "readings.csv", "fileBytes": len(data)}
    table, _, _ = read_dataset((await admin_api.get("/api/v1/datasets/upload/data")).content)
    assert table.column("x").to_pylist() == [float(index) for index in range(20)]

    not_csv = await admin_api.put("/api/v1/datasets/junk/file", params={"fileName": "junk.txt"}, content=b"a")
    assert not_csv.status_code == 422
    assert "junk.txt" in not_csv.json()["message"]

    # A second dataset with the same bytes shares the stored file.
    again = await admin_api.put(
        "/api/v1/datasets/upload-2/file", params={"fileName": "readings.csv"}, content=data
    )
    assert again.json()["sha256"] == uploaded["sha256"]
    store = app.state.services.artifact_store
    with app.state.services.sessions() as session:
        session.add(
            TrainingJob(
                id="00000000-0000-0000-0000-000000000001",
                model_name="m",
                dataset_name="upload",
                dataset_sha256=uploaded["sha256"],
                request={},
                status=TrainingStatus.RUNNING,
                created_by="admin",
            )
        )
        session.commit()
    refused = await admin_api.delete("/api/v1/datasets/upload")
    assert refused.status_code == 409
    assert "00000000-0000-0000-0000-000000000001" in refused.json()["message"]
    with app.state.services.sessions() as session:
        session.get(TrainingJob, "00000000-0000-0000-0000-000000000001").status = TrainingStatus.FAILED
        session.commit()
    assert (await admin_api.delete("/api/v1/datasets/upload")).status_code == 204
    assert store.exists(uploaded["sha256"])
    assert (await admin_api.delete("/api/v1/datasets/upload-2")).status_code == 204
    assert not store.exists(uploaded["sha256"])
    assert (await admin_api.get("/api/v1/datasets/upload")).status_code == 404

    reader_token = (
        await admin_api.post("/api/v1/tokens", json={"name": "reader", "role": "read-only"})
    ).json()
    async with api_client(reader_token["token"]) as reader:
        assert (await reader.get("/api/v1/datasets")).status_code == 200
        forbidden = await reader.put("/api/v1/datasets/x/file", params={"fileName": "x.csv"}, content=data)
        assert forbidden.status_code == 403


async def test_without_the_ml_libraries_datasets_and_training_answer_503(
    admin_api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded = await admin_api.put(
        "/api/v1/datasets/d/file", params={"fileName": "d.csv"}, content=b"x,label\n1,0\n2,1\n"
    )
    assert uploaded.status_code == 201
    # A module set to None in sys.modules is what a missing package looks like to an import statement.
    monkeypatch.setitem(sys.modules, "edgewise.ml.datasets", None)
    monkeypatch.setitem(sys.modules, "edgewise.ml.training.tasks", None)
    refused = [
        await create(admin_api, {"name": "x", "fields": ["v"]}),
        await admin_api.post(
            "/api/v1/training-jobs", json={"modelName": "m", "dataset": "d", "task": "anomaly"}
        ),
    ]
    for response in refused:
        assert response.status_code == 503
        assert response.json()["code"] == "ml_unavailable"
        assert "pip install 'edgewise[ml]'" in response.json()["message"]
    assert (await admin_api.get("/api/v1/datasets/d")).status_code == 200


async def test_a_dataset_file_may_exceed_the_json_body_limit_but_not_its_own(tmp_path: Path) -> None:
    start = initialize(tmp_path / "limits", api_body_max_bytes=64 * 1024, dataset_file_max_bytes=200_000)
    limited = create_app(start.settings)
    row = b"1764100000000,0.123456789,1\n"
    medium = b"timestamp,x,label\n" + row * (100_000 // len(row))
    large = b"timestamp,x,label\n" + row * (300_000 // len(row))
    try:
        transport = httpx.ASGITransport(app=limited)
        headers = {"Authorization": f"Bearer {start.admin_token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud", headers=headers) as api:
            accepted = await api.put(
                "/api/v1/datasets/medium/file", params={"fileName": "m.csv"}, content=medium
            )
            refused = await api.put(
                "/api/v1/datasets/large/file", params={"fileName": "l.csv"}, content=large
            )
    finally:
        limited.state.services.engine.dispose()
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["rows"] == 100_000 // len(row)
    assert refused.status_code == 422
    assert "'body'" in refused.json()["message"]
    assert "dataset_file_max_bytes" in refused.json()["message"]
