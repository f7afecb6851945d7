"""The logs API (pages with the ``after`` cursor, filters, components, bad parameters answered 422 naming them)
and ``edgewise logs`` through typer's CliRunner against the real API served by uvicorn on a socket (lines as
text and JSON, filters, a bounded follow that sees a line stored while it polls)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from edgewise.cli.logs import format_line
from edgewise.cli.main import app as cli
from edgewise.cloud.app import FirstStart
from edgewise.cloud.logs.service import LogLine, store_lines
from tests.cloud.telemetry.test_cli import LiveApi

#: Ten minutes ago, so that ``--since 1h`` covers the stored lines.
T0 = (int(datetime.datetime.now(datetime.UTC).timestamp()) // 60 - 10) * 60_000


def store(app: FastAPI, *lines: LogLine) -> None:
    with app.state.services.sessions.begin() as session:
        store_lines(session, lines)


def line(
    offset: int, *, component: str = "com.example.Hello", level: str | None = "INFO", thing: str = "pump-1"
) -> LogLine:
    return LogLine(thing, component, f"{component}.log", "f1", offset, T0 + offset, level, f"hello {offset}")


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get(f"/api/v1/things/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_lines_page_with_the_after_cursor_and_filter(
    app: FastAPI, admin_api: httpx.AsyncClient
) -> None:
    store(
        app,
        *(line(n, level=("INFO", "WARN", "ERROR")[n % 3]) for n in range(5)),
        line(9, component="System", level=None),
        line(0, thing="pump-2"),
    )
    page = await get(admin_api, "pump-1/logs", limit=2)
    assert ([row["offset"] for row in page["data"]], page["more"]) == ([0, 1], True)
    first = page["data"][0]
    assert {
        key: first[key] for key in ("thing", "component", "file", "fileId", "timestamp", "level", "message")
    } == {
        "thing": "pump-1",
        "component": "com.example.Hello",
        "file": "com.example.Hello.log",
        "fileId": "f1",
        "timestamp": T0,
        "level": "INFO",
        "message": "hello 0",
    }
    rest = await get(admin_api, "pump-1/logs", after=page["cursor"])
    assert ([row["offset"] for row in rest["data"]], rest["more"]) == ([2, 3, 4, 9], False)
    done = await get(admin_api, "pump-1/logs", after=rest["cursor"])
    assert (done["data"], done["cursor"], done["more"]) == ([], None, False)
    assert [row["offset"] for row in (await get(admin_api, "pump-1/logs", level="WARN"))["data"]] == [1, 2, 4]
    assert [row["offset"] for row in (await get(admin_api, "pump-1/logs", component="System"))["data"]] == [9]
    iso = datetime.datetime.fromtimestamp((T0 + 2) / 1000, datetime.UTC).isoformat()
    timed = await get(admin_api, "pump-1/logs", since=iso, until=str(T0 + 4))
    assert [row["offset"] for row in timed["data"]] == [2, 3]
    components = await get(admin_api, "pump-1/logs/components")
    assert [(item["component"], item["lines"], item["lastTimestamp"]) for item in components["data"]] == [
        ("System", 1, T0 + 9),
        ("com.example.Hello", 5, T0 + 4),
    ]
    assert (await get(admin_api, "nobody/logs/components"))["data"] == []


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("pump-1/logs", {"since": "yesterday"}, "'since'"),
        ("pump-1/logs", {"since": "2000", "until": "1000"}, "'until'"),
        ("pump-1/logs", {"level": "LOUD"}, "level"),
        ("pump-1/logs", {"limit": "0"}, "limit"),
        ("pump-1/logs", {"stream": "x"}, "'stream'"),
        ("bad%20name/logs", {}, "thing"),
    ],
)
async def test_a_bad_parameter_is_answered_422_naming_it(
    admin_api: httpx.AsyncClient, path: str, params: dict[str, str], named: str
) -> None:
    response = await admin_api.get(f"/api/v1/things/{path}", params=params)
    assert response.status_code == 422, response.text
    assert named in response.json()["message"]


@pytest.fixture
def live_api(app: FastAPI) -> Iterator[LiveApi]:
    with LiveApi(app) as server:
        yield server


def run(live_api: LiveApi, first_start: FirstStart, *args: str) -> Result:
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": first_start.admin_token, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(cli, ["logs", *args, "--api", live_api.url], env=env)


def test_the_cli_prints_lines_filters_them_and_follows(
    app: FastAPI, live_api: LiveApi, first_start: FirstStart, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(app, line(0), line(1, level="ERROR"), line(2, component="System", level=None))
    shown = datetime.datetime.fromtimestamp(T0 / 1000, datetime.UTC).isoformat(timespec="milliseconds")
    result = run(live_api, first_start, "--thing", "pump-1")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{shown.replace('+00:00', 'Z')} [INFO] com.example.Hello: hello 0",
        f"{shown.replace('.000+00:00', '.001Z')} [ERROR] com.example.Hello: hello 1",
        f"{shown.replace('.000+00:00', '.002Z')} [-] System: hello 2",
    ]
    result = run(live_api, first_start, "--thing", "pump-1", "--level", "warn", "--since", "1h", "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(text)["offset"] for text in result.output.splitlines()] == [1]
    result = run(live_api, first_start, "--thing", "pump-1", "--component", "System", "--since", "2099-01-01")
    assert (result.exit_code, result.output) == (0, "")

    # Following: the stored lines, then one stored while it waits between polls; --max-lines ends it.
    waits: list[float] = []

    def wait(seconds: float) -> None:
        if not waits:
            store(app, line(3, component="System"))
        waits.append(seconds)

    monkeypatch.setattr("edgewise.cli.logs.time.sleep", wait)
    result = run(
        live_api, first_start, "--thing", "pump-1", "--follow", "--interval", "0.05", "--max-lines", "4"
    )
    assert waits == [0.05]
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].endswith("[INFO] System: hello 3")


def test_the_cli_names_a_bad_option(live_api: LiveApi, first_start: FirstStart) -> None:
    result = run(live_api, first_start, "--thing", "pump-1", "--since", "soon")
    assert result.exit_code != 0
    assert "--since" in result.output
    result = run(live_api, first_start, "--thing", "pump-1", "--level", "LOUD")
    assert result.exit_code != 0
    assert "level" in result.output


def test_a_line_without_a_time_shows_when_it_arrived() -> None:
    text = format_line(
        {
            "timestamp": None,
            "receivedAt": "2026-12-07T10:00:00.5+00:00",
            "level": "WARN",
            "component": "C",
            "message": "m",
        }
    )
    assert text == "2026-12-07T10:00:00.500Z [WARN] C: m"
