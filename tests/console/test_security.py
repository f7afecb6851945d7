"""The console's security over HTTP: sessions on every route, CSRF on every change, one-time login links, the
API's roles, and no token in any page, URL or log line."""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi.routing import APIRoute

from edgewise.cloud.console import session as session_module
from edgewise.cloud.console.app import PAGES
from edgewise.cloud.console.pages import login
from edgewise.cloud.console.rendering import CONSOLE_PREFIX
from edgewise.cloud.console.session import LINK_LIFETIME, SESSION_IDLE, ConsoleSessions
from edgewise.cloud.errors import LimitExceededError
from tests.console.conftest import THING, ConsoleCloud, form_csrf_token, log_in

#: Console routes that need no session: the login form, its POST, and login links.
PUBLIC = {("GET", "/console/login"), ("POST", "/console/login"), ("GET", "/console/login/{code}")}


def _console_routes() -> list[tuple[str, str]]:
    """Every route of the console's routers (each page in PAGES, and login/logout) but the public ones."""
    routes = [
        (method, CONSOLE_PREFIX + route.path)
        for router in (*PAGES, login.router)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods or ())
    ]
    return [route for route in routes if route not in PUBLIC]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", THING, path)


async def _admin_shadow(client: httpx.AsyncClient, cloud: ConsoleCloud) -> dict[str, object]:
    answer = await client.get(
        f"/api/v1/things/{THING}/shadow", headers={"Authorization": f"Bearer {cloud.admin_token}"}
    )
    assert answer.status_code == 200
    document: dict[str, object] = answer.json()["state"]
    return document


async def test_every_console_route_needs_a_session(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    routes = _console_routes()
    assert ("GET", "/console/") in routes
    assert ("POST", "/console/logout") in routes
    for method, path in routes:
        answer = await console_client.request(method, _concrete(path), data={"desired": "{}"})
        if method == "GET":
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/console/login?next="), (method, path)
        else:
            assert answer.status_code == 401, (method, path)
    # A session id nobody issued is no session.
    console_client.cookies.set("edgewise_session", "forged")
    assert (await console_client.get("/console/")).status_code == 303


async def test_changes_need_the_session_csrf_token(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    before = await _admin_shadow(console_client, console_cloud)
    path = f"/console/things/{THING}/shadow"
    missing = await console_client.post(path, data={"desired": '{"rate": 5}'})
    wrong = await console_client.post(path, data={"desired": '{"rate": 5}', "csrf_token": "x" + csrf})
    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert await _admin_shadow(console_client, console_cloud) == before
    assert (await console_client.post("/console/logout")).status_code == 403
    by_header = await console_client.post(
        path, data={"desired": '{"rate": 5}'}, headers={"X-CSRF-Token": csrf}
    )
    assert by_header.status_code == 303
    state = await _admin_shadow(console_client, console_cloud)
    assert state["desired"] == {"rate": 5}


async def test_the_login_form_needs_its_own_csrf_cookie(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    form = await console_client.get("/console/login")
    console_client.cookies.clear()
    answer = await console_client.post(
        "/console/login", data={"token": console_cloud.admin_token, "csrf_token": form_csrf_token(form.text)}
    )
    assert answer.status_code == 403
    assert "edgewise_session" not in answer.headers.get("set-cookie", "")


async def test_a_wrong_token_does_not_log_in(console_client: httpx.AsyncClient) -> None:
    form = await console_client.get("/console/login")
    answer = await console_client.post(
        "/console/login", data={"token": "ewt_not-a-token", "csrf_token": form_csrf_token(form.text)}
    )
    assert answer.status_code == 401
    assert "not a valid API token" in answer.text
    assert (await console_client.get("/console/")).status_code == 303


async def test_logout_ends_the_session(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    session_id = console_client.cookies["edgewise_session"]
    assert (await console_client.post("/console/logout", data={"csrf_token": csrf})).status_code == 303
    console_client.cookies.set("edgewise_session", session_id)
    assert (await console_client.get("/console/")).status_code == 303


async def test_a_login_link_works_once(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    made = await console_client.post(
        "/api/v1/console/login-links", headers={"Authorization": f"Bearer {console_cloud.read_only_token}"}
    )
    assert made.status_code == 201
    url = made.json()["url"]
    assert url.startswith("/console/login/")
    assert console_cloud.read_only_token not in made.text
    opened = await console_client.get(url)
    assert opened.status_code == 303
    assert opened.headers["location"] == "/console/"
    fleet = await console_client.get("/console/")
    assert fleet.status_code == 200
    assert "viewer (read-only)" in fleet.text
    console_client.cookies.clear()
    again = await console_client.get(url)
    assert again.status_code == 410
    assert (await console_client.get("/console/")).status_code == 303


async def test_a_login_link_needs_a_token(console_client: httpx.AsyncClient) -> None:
    assert (await console_client.post("/api/v1/console/login-links")).status_code == 401


def test_sessions_expire_when_idle_and_links_after_ten_minutes() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    sessions = ConsoleSessions(clock=lambda: now)
    session = sessions.open("ewt_x", token_name="admin", role="admin")
    link = sessions.create_link("ewt_x")
    now += LINK_LIFETIME
    assert sessions.redeem_link(link.code) is None
    now += SESSION_IDLE - LINK_LIFETIME
    assert sessions.find(session.id) is session
    now += SESSION_IDLE + datetime.timedelta(seconds=1)
    assert sessions.find(session.id) is None


def test_sessions_and_links_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "MAX_SESSIONS", 3)
    monkeypatch.setattr(session_module, "MAX_LINKS", 2)
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    sessions = ConsoleSessions(clock=lambda: now)
    opened = []
    for minute in range(4):
        now += datetime.timedelta(minutes=minute)
        opened.append(sessions.open("ewt_x", token_name="admin", role="admin"))
    # The least recently used session made room for the fourth; the others live on.
    assert sessions.find(opened[0].id) is None
    assert all(sessions.find(session.id) is session for session in opened[1:])

    links = [sessions.create_link("ewt_x") for _ in range(2)]
    with pytest.raises(LimitExceededError, match="2 login links are waiting"):
        sessions.create_link("ewt_x")
    assert sessions.redeem_link(links[0].code) == "ewt_x"
    sessions.create_link("ewt_x")  # a used link makes room


async def test_a_read_only_token_cannot_change_a_shadow(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.read_only_token)
    before = await _admin_shadow(console_client, console_cloud)
    answer = await console_client.post(
        f"/console/things/{THING}/shadow", data={"desired": '{"rate": 9}', "csrf_token": csrf}
    )
    assert answer.status_code == 403
    assert "API token &#39;viewer&#39; has role &#39;read-only&#39;, which does not allow" in answer.text
    assert await _admin_shadow(console_client, console_cloud) == before


@pytest.mark.parametrize(
    ("desired", "problem"), [("{", "is not valid JSON"), ("[1]", "must be a JSON object")]
)
async def test_bad_desired_state_names_the_field(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient, desired: str, problem: str
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    before = await _admin_shadow(console_client, console_cloud)
    answer = await console_client.post(
        f"/console/things/{THING}/shadow", data={"desired": desired, "csrf_token": csrf}
    )
    assert answer.status_code == 422
    assert f"Field &#39;desired&#39; {problem}" in answer.text
    assert await _admin_shadow(console_client, console_cloud) == before


async def test_no_token_in_any_page_url_or_log_line(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[httpx.Response] = []
    console_client.event_hooks["response"] = [_keep(answers)]
    csrf = await log_in(console_client, console_cloud.admin_token)
    for path in (
        "/console/",
        "/console/fleet/partial",
        f"/console/things/{THING}",
        f"/console/things/{THING}/partial",
    ):
        assert (await console_client.get(path)).status_code == 200, path
    await console_client.post(
        f"/console/things/{THING}/shadow", data={"desired": '{"rate": 2}', "csrf_token": csrf}
    )
    await console_client.post(f"/console/things/{THING}/shadow", data={"desired": "{", "csrf_token": csrf})
    made = await console_client.post(
        "/api/v1/console/login-links", headers={"Authorization": f"Bearer {console_cloud.admin_token}"}
    )
    await console_client.get(made.json()["url"])
    await console_client.post("/console/logout", data={"csrf_token": csrf})
    assert len(answers) >= 10
    for token in (console_cloud.admin_token, console_cloud.read_only_token):
        for answer in answers:
            assert token not in (await answer.aread()).decode(), answer.url
            assert token not in str(answer.headers), answer.url
            assert token not in str(answer.url)
        assert token not in caplog.text


def _keep(answers: list[httpx.Response]) -> Callable[[httpx.Response], Awaitable[None]]:
    async def keep(answer: httpx.Response) -> None:
        answers.append(answer)

    return keep
