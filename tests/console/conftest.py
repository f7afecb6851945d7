"""Fixtures for the console tests: a cloud with one seeded device, logged-in HTTP clients, and a browser.

``console_cloud`` (one per module) is the API app on a fresh SQLite cloud holding the thing ``hub-1`` (group
``lab``) that reported a healthy status with two components, log lines, telemetry, a classic shadow and a
deployment (``first``), plus the offline device ``hub-2``, the online ``hub-3``, and a read-only token. ``console_client`` is an httpx client of that app
(no session); ``log_in(client, token)`` opens a session through the login form. ``served_console`` serves the
app over HTTP for the browser, and ``browser_page`` is a Playwright page in Debian's chromium.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from edgewise.cloud.app import create_app, initialize
from edgewise.cloud.auth import service as auth_service
from edgewise.cloud.auth.roles import Role
from edgewise.cloud.deployments.schemas import ComponentDeploymentSpecification, DeploymentCreate
from edgewise.cloud.deployments.service import create_deployment
from edgewise.cloud.fleet import status
from edgewise.cloud.logs import service as logs_service
from edgewise.cloud.registry import service as registry_service
from edgewise.cloud.shadows import service as shadow_service
from edgewise.cloud.telemetry.records import TelemetryRecord, store_records
from edgewise.protocol import health
from tests.support.api_server import served_api

if TYPE_CHECKING:
    from playwright.sync_api import Page

THING = "hub-1"
OFFLINE_THING = "hub-2"
OTHER_THING = "hub-3"
DEPLOYMENT = "first"
GROUP = "lab"
STREAM = "sensors"


@dataclass(frozen=True)
class ConsoleCloud:
    """The app and the secrets of its tokens."""

    app: FastAPI
    admin_token: str
    read_only_token: str
    data_dir: Path


def _health(thing: str, overall: str, now_ms: int) -> bytes:
    components = [
        {"componentName": "com.example.Sensor", "version": "1.0.0", "status": "RUNNING", "isRoot": True},
        {
            "componentName": "aws.greengrass.Nucleus",
            "version": "2.12.0",
            "status": "FINISHED",
            "isRoot": False,
        },
    ]
    message = {
        "ggcVersion": "2.12.0",
        "platform": "linux",
        "architecture": "amd64",
        "thing": thing,
        "overallDeviceStatus": overall,
        "sequenceNumber": 1,
        "timestamp": now_ms,
        "messageType": "COMPLETE",
        "trigger": "NUCLEUS_LAUNCH",
        "components": components,
    }
    return json.dumps(message).encode()


def _seed(app: FastAPI) -> str:
    """Fill the cloud with the fleet the tests look at; the read-only token's secret."""
    now_ms = int(time.time() * 1000)
    with app.state.services.sessions() as session:
        registry_service.create_group(session, GROUP)
        for thing in (THING, OFFLINE_THING, OTHER_THING):
            registry_service.create_thing(session, thing)
        registry_service.add_thing_to_group(session, GROUP, THING)
        registry_service.add_thing_to_group(session, GROUP, OTHER_THING)
        for thing in (THING, OTHER_THING):
            status.record_health(session, thing, status.parse_health(_health(thing, "HEALTHY", now_ms)))
            status.record_presence(session, thing, health.PresenceMessage(connected=True, timestamp=now_ms))
        status.record_health(
            session, OFFLINE_THING, status.parse_health(_health(OFFLINE_THING, "UNHEALTHY", now_ms))
        )
        status.record_presence(
            session, OFFLINE_THING, health.PresenceMessage(connected=False, timestamp=now_ms)
        )
        records = [
            TelemetryRecord(
                THING, STREAM, now_ms - minute * 60_000, json.dumps({"temperature": 20 + minute % 5}).encode()
            )
            for minute in range(30, 0, -1)
        ]
        store_records(session, records)
        lines = [
            logs_service.LogLine(
                THING, "com.example.Sensor", "sensor.log", "f1", index * 100, now_ms, "INFO", text
            )
            for index, text in enumerate(["sensor started", "reading every 1s"])
        ]
        logs_service.store_lines(session, lines)
        session.commit()
        shadow_update = json.dumps({"state": {"desired": {"rate": 1}, "reported": {"rate": 1}}}).encode()
        shadow_service.update_shadow(session, THING, None, shadow_update, now=now_ms // 1000, from_api=True)
        deployment = DeploymentCreate(
            target_arn=THING,
            deployment_name=DEPLOYMENT,
            components={"aws.greengrass.Cli": ComponentDeploymentSpecification(component_version="2.12.0")},
        )
        create_deployment(session, deployment, sealer=app.state.services.secret_sealer)
        issued = auth_service.create_token(session, "viewer", role=Role.READ_ONLY)
    return issued.secret


@pytest.fixture(scope="module")
def console_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleCloud]:
    """A fresh SQLite cloud with a seeded fleet, and its app (one per test module)."""
    data_dir = tmp_path_factory.mktemp("console") / "cloud"
    first = initialize(data_dir)
    assert first.admin_token is not None
    app = create_app(first.settings)
    read_only = _seed(app)
    try:
        yield ConsoleCloud(app, first.admin_token, read_only, data_dir)
    finally:
        app.state.services.engine.dispose()


@pytest.fixture
async def console_client(console_cloud: ConsoleCloud) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the console's app, not logged in."""
    transport = httpx.ASGITransport(app=console_cloud.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        yield client


def form_csrf_token(html: str) -> str:
    """The CSRF token a page's form carries."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, token: str) -> str:
    """Log ``client`` in through the login form; the session's CSRF token."""
    form = await client.get("/console/login")
    answer = await client.post(
        "/console/login", data={"token": token, "csrf_token": form_csrf_token(form.text), "next": "/console/"}
    )
    assert answer.status_code == 303, answer.text
    fleet = await client.get("/console/")
    assert fleet.status_code == 200
    return form_csrf_token(fleet.text)


@pytest.fixture(scope="module")
def served_console(console_cloud: ConsoleCloud) -> Iterator[str]:
    """The console's app served over HTTP on a free loopback port; its base URL."""
    with served_api(console_cloud.app) as url:
        yield url


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """A Playwright page in Debian's chromium (headless), at a laptop's screen size."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium is not None, "Debian's chromium is not installed (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()
