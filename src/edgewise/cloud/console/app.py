"""Mounts the web console on the cloud's FastAPI app: its pages under ``/console/``, its static files, the
login-links API route, and the redirect from ``/`` to the console.

How to add a page
-----------------
1. Write ``console/pages/<name>.py`` with ``router = APIRouter()`` and routes whose paths start with the
   section's path, e.g. ``@router.get("/deployments")`` (the router is included under ``/console``)::

       from fastapi import APIRouter, Request
       from edgewise.cloud.console.pages import ConsoleApiDep, render

       router = APIRouter()

       @router.get("/deployments")
       async def deployments(request: Request, api: ConsoleApiDep) -> Response:
           page = await api.get("/deployments", limit=100)        # the REST API, as the session's token
           return render(request, "deployments/index.html", deployments=page["data"])

2. Add the module's router to :data:`PAGES` below. Every route of a router in ``PAGES`` needs a live session
   (a page without one is sent to the login form; anything else gets 401) and, for POST/PUT/PATCH/DELETE, the
   session's CSRF token (403 without it): the page module does nothing for either.
3. Templates go in ``templates/<name>/*.html``, ``{% extends "base.html" %}`` and fill ``{% block content %}``
   (``{% block head %}`` for extra CSS/JS, e.g. ``<script src="{{ static(UPLOT_JS) }}"></script>``). Forms
   carry ``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">``; htmx requests send the token by
   themselves (``hx-headers`` on ``<body>``).
4. Live parts: render them from their own template (e.g. ``deployments/_rows.html``, included by the page) and
   serve it from a ``.../partial`` route; the page polls it with
   ``hx-get="/console/deployments/partial" hx-trigger="every 2s" hx-swap="innerHTML"``.
5. Charts: ``{% from "_chart.html" import chart %}{{ chart("cpu", data) }}`` with ``data`` =
   ``{"x": [seconds...], "series": [{"label": ..., "values": [...]}]}`` (see templates/_chart.html).
6. An API refusal (:class:`ConsoleApiError`) that a route does not catch becomes an error page with the API's
   status and message; catch it to show the message inside the page instead (``render(..., error=exc.message,
   status_code=exc.status)``).
7. Several API calls at once: ``a, b = await gather(api.get(...), api.get(...))`` (from ``pages``), not
   :func:`asyncio.gather`, which leaves calls running after one fails.
8. Tests: tests/console/conftest.py has ``console_cloud`` (a seeded SQLite cloud's app and tokens, per module),
   ``console_client`` (an httpx client of it), ``log_in(client, token)`` (returns the CSRF token),
   ``form_csrf_token(html)``, ``served_console`` (the app over HTTP) and ``browser_page`` (Playwright in
   chromium; mark browser tests ``pytest.mark.browser``). tests/console/test_security.py checks the session on
   every route of every router in ``PAGES`` already.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from edgewise.cloud.console import login_links
from edgewise.cloud.console.api import ConsoleApiError
from edgewise.cloud.console.dependencies import require_csrf, require_session
from edgewise.cloud.console.pages import (
    components,
    deployments,
    fleet,
    identity,
    jobs,
    login,
    models,
    rules,
    telemetry,
)
from edgewise.cloud.console.rendering import (
    CONSOLE_PREFIX,
    STATIC_DIR,
    STATIC_PREFIX,
    is_fragment_request,
    render,
)
from edgewise.cloud.console.session import ConsoleSessions, LoginRequiredError

#: The routers of the console's pages; each needs a session and, to change something, the CSRF token.
PAGES: tuple[APIRouter, ...] = (
    fleet.router,
    telemetry.router,
    models.router,
    deployments.router,
    components.router,
    jobs.router,
    rules.router,
    identity.router,
)

#: Console paths whose requests carry a session cookie rather than a bearer token.
SESSION_PATHS = re.compile(re.escape(CONSOLE_PREFIX) + "(?:/|$)")


def mount_console(app: FastAPI, *, api_prefix: str) -> None:
    """Serve the console from ``app``: pages, static files, ``POST {api_prefix}/console/login-links``, ``/``."""
    app.state.console_sessions = ConsoleSessions()
    app.add_exception_handler(LoginRequiredError, _on_login_required)
    app.add_exception_handler(ConsoleApiError, _on_api_error)
    app.include_router(login_links.router, prefix=api_prefix)
    app.include_router(login.router, prefix=CONSOLE_PREFIX, include_in_schema=False)
    for router in PAGES:
        app.include_router(
            router,
            prefix=CONSOLE_PREFIX,
            include_in_schema=False,
            dependencies=[Depends(require_session), Depends(require_csrf)],
        )
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="console-static")
    app.add_api_route("/", _to_console, include_in_schema=False)


def _to_console() -> RedirectResponse:
    return RedirectResponse(f"{CONSOLE_PREFIX}/", status_code=307)


async def _on_login_required(request: Request, exc: Exception) -> Response:
    login_url = f"{CONSOLE_PREFIX}/login"
    if request.method in {"GET", "HEAD"} and not is_fragment_request(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{login_url}?next={quote(target, safe='')}", status_code=303)
    return JSONResponse(
        {"code": "unauthenticated", "message": str(exc)}, status_code=401, headers={"HX-Redirect": login_url}
    )


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleApiError)
    template = "_error.html" if is_fragment_request(request) else "error.html"
    return render(request, template, status_code=exc.status, error=exc.message)
