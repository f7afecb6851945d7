"""``edgewise telemetry ...`` through typer's CliRunner against the real API served by uvicorn on a socket:
tables and JSON, series, a bounded live tail, the Parquet export read back, retention, and bad options named; and
``cloud up``'s retention options, the last through a real ``edgewise cloud up``."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from edgewise.cli.main import app as cli
from edgewise.cli.telemetry import EXPORT_FORMAT, export_schema
from edgewise.cloud.app import FirstStart
from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.telemetry import TelemetryRecord, store_records
from tests.support.cloud_process import CloudProcess
from tests.support.ports import free_port
from tests.support.waiting import wait_until

MINUTE = 60_000
#: Ten minutes ago, so that the default ``--since 1h`` covers the stored messages.
T0 = (int(datetime.datetime.now(datetime.UTC).timestamp()) // 60 - 10) * MINUTE


class LiveApi:
    """The API under uvicorn in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveApi:
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn to start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_api(app: FastAPI) -> Iterator[LiveApi]:
    with LiveApi(app) as server:
        yield server


def store(app: FastAPI, *records: TelemetryRecord) -> None:
    with app.state.services.sessions() as session:
        store_records(session, list(records))
        session.commit()


def reading(
    offset_ms: int, payload: Any, *, thing: str = "pump-1", stream: str = "line", **extra: Any
) -> TelemetryRecord:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return TelemetryRecord(thing, stream, T0 + offset_ms, raw, **extra)


def run(live_api: LiveApi, first_start: FirstStart, *args: str) -> Result:
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": first_start.admin_token, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(cli, ["telemetry", *args, "--api", live_api.url], env=env)


def ok(live_api: LiveApi, first_start: FirstStart, *args: str) -> str:
    result = run(live_api, first_start, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_query_prints_the_newest_messages_as_a_table_or_json(
    app: FastAPI, live_api: LiveApi, first_start: FirstStart
) -> None:
    store(
        app,
        reading(0, {"t": 20}, sequence_number=1),
        reading(1000, {"t": 21}, sequence_number=2),
        reading(2000, b"\x01\x02"),
    )
    table = ok(live_api, first_start, "query", "--thing", "pump-1", "--stream", "line")
    assert '{"t":21}' in table
    assert "<2 bytes>" in table
    assert table.index("<2 bytes>") < table.index('{"t":20}')
    messages = json.loads(
        ok(live_api, first_start, "query", "--stream", "line", "--oldest", "--limit", "2", "--json")
    )
    assert [m["payload"] for m in messages] == [{"t": 20}, {"t": 21}]
    more = ok(live_api, first_start, "query", "--limit", "1")
    assert "there are more" in more


def test_query_with_field_and_every_prints_the_series(
    app: FastAPI, live_api: LiveApi, first_start: FirstStart
) -> None:
    store(
        app,
        reading(0, {"t": 2}),
        reading(1000, {"t": 4}),
        reading(MINUTE, {"t": 9}),
        reading(MINUTE + 1, {"t": "x"}),
    )
    since = str(T0)
    series = json.loads(
        ok(
            live_api,
            first_start,
            "query",
            "--stream",
            "line",
            "--since",
            since,
            "--field",
            "t",
            "--every",
            "1m",
            "--json",
        )
    )
    assert [(b["start"], b["count"], b["mean"]) for b in series["buckets"]] == [
        (T0, 2, 3.0),
        (T0 + MINUTE, 1, 9.0),
    ]
    table = ok(
        live_api,
        first_start,
        "query",
        "--stream",
        "line",
        "--since",
        since,
        "--field",
        "t",
        "--every",
        "1m",
        "--stat",
        "max",
    )
    assert "Max" in table
    assert "Mean" not in table
    assert "1 messages skipped: t is missing or not a number" in table


def test_tail_prints_recent_then_new_messages_until_its_bound(
    app: FastAPI, live_api: LiveApi, first_start: FirstStart
) -> None:
    store(app, reading(0, {"n": 0}), reading(1, {"n": 1}))
    recent = json.loads(ok(live_api, first_start, "query", "--json", "--limit", "1"))
    newest_id = recent[0]["id"]
    # Stored while the tail runs: it started after newest_id, so it prints these whenever they land.
    late = threading.Thread(target=store, args=(app, reading(5, {"n": 2}), reading(-5, {"n": 3})))
    late.start()
    try:
        output = ok(
            live_api,
            first_start,
            "tail",
            "--after",
            str(newest_id),
            "--max-messages",
            "2",
            "--interval",
            "0.05",
            "--json",
        )
    finally:
        late.join()
    assert [json.loads(line)["payload"] for line in output.splitlines()] == [{"n": 2}, {"n": 3}]
    recent = ok(live_api, first_start, "tail", "--lines", "2", "--max-messages", "2")
    assert [line.split()[-1] for line in recent.splitlines()] == ['{"n":2}', '{"n":3}']


def test_streams_lists_totals(app: FastAPI, live_api: LiveApi, first_start: FirstStart) -> None:
    store(app, reading(0, b"abc"), reading(5, b"de", stream="dt/pump-1/t", topic="dt/pump-1/t"))
    listed = json.loads(ok(live_api, first_start, "streams", "--json"))
    assert [(s["stream"], s["messages"], s["bytes"]) for s in listed] == [
        ("dt/pump-1/t", 1, 2),
        ("line", 1, 3),
    ]
    assert "dt/pump-1/t" in ok(live_api, first_start, "streams", "--since", "2h")


def test_export_writes_parquet_with_the_documented_schema(
    app: FastAPI, live_api: LiveApi, first_start: FirstStart, tmp_path: Path
) -> None:
    records = [reading(n, {"n": n, "s": "é"}, sequence_number=n) for n in range(25)]
    records += [reading(100, b"\x00\x01", topic="line"), reading(50, {"n": -1}, stream="other")]
    store(app, *records)
    output = tmp_path / "line.parquet"
    text = ok(
        live_api, first_start, "export", "--stream", "line", "--since", str(T0), "--output", str(output)
    )
    assert "Exported 26 messages" in text
    table = pq.read_table(output)
    assert table.schema.equals(export_schema())
    assert table.schema.metadata[b"edgewise.format"] == EXPORT_FORMAT
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    rows = table.to_pylist()
    assert len(rows) == 26
    assert rows[0] == {
        "thing": "pump-1",
        "stream": "line",
        "topic": None,
        "sequence_number": 0,
        "timestamp": datetime.datetime.fromtimestamp(T0 / 1000, datetime.UTC),
        "payload": records[0].payload,
        "payload_json": records[0].payload.decode(),
    }
    assert [row["payload"] for row in rows] == [record.payload for record in records[:26]]
    assert (rows[-1]["topic"], rows[-1]["sequence_number"], rows[-1]["payload_json"]) == ("line", None, None)
    refused = run(live_api, first_start, "export", "--stream", "line", "--output", str(output))
    assert refused.exit_code == 1
    assert "--output" in refused.stderr
    assert "--force" in refused.stderr
    ok(live_api, first_start, "export", "--stream", "nothing", "--output", str(output), "--force")
    assert pq.read_table(output).num_rows == 0
    assert not list(tmp_path.glob("*.partial"))


def test_retention_set_list_and_delete(live_api: LiveApi, first_start: FirstStart) -> None:
    assert "max age 7d, max 500000000 bytes" in ok(
        live_api, first_start, "retention", "set", "dt/pump-1/t", "--max-age", "7d", "--max-bytes", "500MB"
    )
    ok(live_api, first_start, "retention", "set", "line", "--max-bytes", "1KiB")
    listing = json.loads(ok(live_api, first_start, "retention", "list", "--json"))
    assert [(r["stream"], r["maxAgeSeconds"], r["maxBytes"]) for r in listing["data"]] == [
        ("dt/pump-1/t", 604_800, 500_000_000),
        ("line", None, 1024),
    ]
    table = ok(live_api, first_start, "retention", "list")
    assert "7d" in table
    assert "kept without limit" in table
    assert "Removed" in ok(live_api, first_start, "retention", "delete", "dt/pump-1/t")
    missing = run(live_api, first_start, "retention", "delete", "dt/pump-1/t")
    assert missing.exit_code == 1
    assert "does not exist" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("query", "--since", "yesterday"), "--since: 'yesterday' is neither"),
        (("query", "--since", "3 parsecs"), "--since: "),
        (("query", "--since", "1x"), "--since: '1x' is not a duration"),
        (("query", "--until", "2026-02-30"), "--until: "),
        (("query", "--field", "t"), "--every: required with --field"),
        (("query", "--every", "1m"), "--field: required with --every"),
        (("query", "--stat", "max"), "--stat: only with --field"),
        (("query", "--field", "t", "--every", "1m", "--stat", "median"), "--stat: 'median' is not one of"),
        (("query", "--field", "t", "--every", "soon"), "--every: 'soon' is not a duration"),
        (("query", "--stream", "line", "--field", "a..b", "--every", "1m"), "Field 'field' is invalid"),
        (
            ("retention", "set", "line", "--max-age", "1500ms"),
            "--max-age: '1500ms' is not a whole number of seconds",
        ),
        (("retention", "set", "line", "--max-bytes", "lots"), "--max-bytes: 'lots' is not a size"),
        (("retention", "set", "line", "--max-bytes", "0"), "--max-bytes: '0' must be from 1 byte"),
    ],
)
def test_bad_options_are_refused_naming_them(
    live_api: LiveApi, first_start: FirstStart, args: tuple[str, ...], message: str
) -> None:
    result = run(live_api, first_start, *args)
    assert result.exit_code == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("forever", "--telemetry-max-age: 'forever' is not a duration"),
        ("1500ms", "must be a whole number of seconds"),
    ],
)
def test_cloud_up_refuses_a_bad_default_age_naming_the_option(
    tmp_path: Path, value: str, message: str
) -> None:
    result = CliRunner().invoke(
        cli, ["cloud", "up", "--data", str(tmp_path / "cloud"), "--telemetry-max-age", value]
    )
    assert result.exit_code == 1
    assert message in result.stderr
    assert not (tmp_path / "cloud").exists()


@pytest.mark.integration
def test_cloud_up_enforces_its_default_age_in_the_background(tmp_path: Path) -> None:
    age = ["--telemetry-max-age", "1h", "--telemetry-retention-interval", "1"]
    with CloudProcess(tmp_path / "cloud", *age) as cloud:
        cloud.wait_ready()
        engine = create_database_engine(f"sqlite:///{cloud.data_dir / 'edgewise.db'}")
        try:
            with create_session_factory(engine)() as session:
                old, recent = T0 - 2 * 3_600_000, T0 + 5 * MINUTE
                store_records(
                    session, [TelemetryRecord("pump-1", "line", stamp, b"{}") for stamp in (old, recent)]
                )
                session.commit()
        finally:
            engine.dispose()
        with cloud.api(cloud.admin_token) as api:

            def remaining() -> list[int] | None:
                stamps = [m["timestamp"] for m in api.get("/telemetry/messages").json()["data"]]
                return stamps if stamps == [recent] else None

            wait_until(remaining, what="the retention worker to delete the old message")
