"""The Fleet pages over HTTP: the fleet table and its live fragment, a device's page, and the login-link CLI."""

from __future__ import annotations

import json
import re

import httpx
from typer.testing import CliRunner

from edgewise.cli.main import app as cli
from tests.console.conftest import DEPLOYMENT, GROUP, OFFLINE_THING, STREAM, THING, ConsoleCloud, log_in


def _row(html: str, thing: str) -> str:
    found = re.search(rf"<tr>\s*<th scope=\"row\"><a href=\"/console/things/{thing}\">.*?</tr>", html, re.S)
    assert found is not None, f"no row for {thing}"
    return found.group(0)


async def test_the_fleet_shows_presence_health_and_groups(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get("/console/")
    online = _row(page.text, THING)
    assert "online" in online
    assert "HEALTHY" in online
    assert GROUP in online
    offline = _row(page.text, OFFLINE_THING)
    assert "offline" in offline
    assert "UNHEALTHY" in offline
    assert 'hx-get="/console/fleet/partial"' in page.text
    fragment = await console_client.get("/console/fleet/partial", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert _row(fragment.text, THING) == online


async def test_a_device_page_shows_components_logs_shadow_chart_and_deployments(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get(f"/console/things/{THING}")
    assert page.status_code == 200
    assert "com.example.Sensor" in page.text
    assert "RUNNING" in page.text
    assert "[com.example.Sensor] sensor started" in page.text
    assert "Classic shadow" in page.text
    assert "&#34;rate&#34;: 1" in page.text
    chart = re.search(
        r'<figure class="chart"[^>]*>.*?<script type="application/json">(.*?)</script>', page.text, re.S
    )
    assert chart is not None
    data = json.loads(chart.group(1))
    assert data["stream"] == STREAM
    assert data["series"][0]["label"] == "temperature"
    assert len(data["x"]) == 30
    assert set(data["series"][0]["values"]) == {20.0, 21.0, 22.0, 23.0, 24.0}
    history = re.search(r'<section id="deployments".*?</section>', page.text, re.S)
    assert history is not None
    assert DEPLOYMENT in history.group(0)
    assert "QUEUED" in history.group(0)
    live = await console_client.get(f"/console/things/{THING}/partial")
    assert "com.example.Sensor" in live.text
    assert "<html" not in live.text


async def test_an_unknown_device_shows_the_api_message(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.admin_token)
    page = await console_client.get("/console/things/nobody")
    assert page.status_code == 404
    assert "Thing &#39;nobody&#39; does not exist" in page.text


def test_the_cli_prints_a_login_link_that_opens_a_session(
    console_cloud: ConsoleCloud, served_console: str
) -> None:
    result = CliRunner().invoke(
        cli, ["console", "login-link", "--api", served_console, "--data", str(console_cloud.data_dir)]
    )
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith(f"{served_console}/console/login/")
    assert console_cloud.admin_token not in url
    with httpx.Client(follow_redirects=True) as browser:
        assert browser.get(url).status_code == 200
        assert "admin (admin)" in browser.get(f"{served_console}/console/").text
        assert browser.get(url).status_code == 410
