"""Renders console pages from the Jinja2 templates next to this module.

``render(request, "fleet/index.html", things=...)`` fills a template with the given context plus what every
page needs: ``session`` (None on the login page), ``csrf_token``, ``nav`` (the sections of the navigation with
the current one marked) and ``static`` (the URL of a file under static/). Templates extend ``base.html`` and fill
its ``content`` block (and ``head`` for extra stylesheets or scripts); autoescaping is on.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

CONSOLE_PREFIX = "/console"
STATIC_PREFIX = f"{CONSOLE_PREFIX}/static"
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
HTMX_JS = "vendor/htmx-2.0.11.min.js"
UPLOT_JS = "vendor/uplot-1.6.32.iife.min.js"
UPLOT_CSS = "vendor/uplot-1.6.32.min.css"


@dataclass(frozen=True)
class Section:
    """One entry of the console's navigation."""

    label: str
    path: str


#: The navigation, in order; a page belongs to the section whose path its own path starts with.
SECTIONS = (
    Section("Fleet", f"{CONSOLE_PREFIX}/"),
    Section("Deployments", f"{CONSOLE_PREFIX}/deployments"),
    Section("Components", f"{CONSOLE_PREFIX}/components"),
    Section("Telemetry", f"{CONSOLE_PREFIX}/telemetry"),
    Section("Models", f"{CONSOLE_PREFIX}/models"),
    Section("Jobs", f"{CONSOLE_PREFIX}/jobs"),
    Section("Rules", f"{CONSOLE_PREFIX}/rules"),
    Section("Certificates", f"{CONSOLE_PREFIX}/certificates"),
    Section("Policies", f"{CONSOLE_PREFIX}/policies"),
)


def static_url(path: str) -> str:
    """The URL of ``path`` under the console's static files."""
    return f"{STATIC_PREFIX}/{path}"


def current_section(path: str) -> Section:
    """The navigation section a page at ``path`` belongs to (Fleet for the device pages)."""
    for section in SECTIONS[1:]:
        if path == section.path or path.startswith(section.path + "/"):
            return section
    return SECTIONS[0]


def when(value: Any) -> str:
    """An API time (ISO 8601 text, or milliseconds since the epoch) as ``YYYY-MM-DD HH:MM:SS`` UTC; '—' for none."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int | float):
        moment = datetime.datetime.fromtimestamp(value / 1000, datetime.UTC)
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["static"] = static_url
templates.env.globals["UPLOT_JS"] = UPLOT_JS
templates.env.globals["UPLOT_CSS"] = UPLOT_CSS
templates.env.globals["HTMX_JS"] = HTMX_JS
templates.env.filters["when"] = when


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
    """The HTML response of ``template`` filled with ``context`` and what every page needs."""
    session = getattr(request.state, "console_session", None)
    section = current_section(request.url.path)
    page_context = {
        "session": session,
        "csrf_token": session.csrf_token if session is not None else "",
        "nav": [(item, item == section) for item in SECTIONS],
        **context,
    }
    return templates.TemplateResponse(request, template, page_context, status_code=status_code)


def is_fragment_request(request: Request) -> bool:
    """Whether htmx asked for this response (it then wants a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true"
