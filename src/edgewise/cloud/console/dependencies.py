"""The FastAPI dependencies of console pages: the session, the CSRF check, and the session's API client.

:func:`require_session` and :func:`require_csrf` guard every page router listed in ``PAGES`` (console/app.py
adds them to the router), so a page module only asks for what it uses: ``api: ConsoleApiDep`` to call the REST
API, ``session: ConsoleSessionDep`` for the session itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from edgewise.cloud.console.api import ConsoleApi
from edgewise.cloud.console.csrf import SAFE_METHODS, check_token, submitted_csrf_token
from edgewise.cloud.console.session import SESSION_COOKIE, ConsoleSession, ConsoleSessions, LoginRequiredError


def console_sessions(request: Request) -> ConsoleSessions:
    """The sessions of the console this request reached."""
    sessions: ConsoleSessions = request.app.state.console_sessions
    return sessions


def require_session(request: Request) -> ConsoleSession:
    """The request's live session; :class:`LoginRequiredError` (to the login page, or 401) without one."""
    session = console_sessions(request).find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequiredError("Log in to use the console")
    request.state.console_session = session
    return session


ConsoleSessionDep = Annotated[ConsoleSession, Depends(require_session)]


async def require_csrf(request: Request, session: ConsoleSessionDep) -> None:
    """Refuse (403) a request that changes something without the session's CSRF token."""
    if request.method not in SAFE_METHODS:
        check_token(await submitted_csrf_token(request), session.csrf_token)


async def console_api(request: Request, session: ConsoleSessionDep) -> AsyncIterator[ConsoleApi]:
    """A client of the REST API acting with the session's token."""
    async with ConsoleApi(request.app, session.token) as api:
        yield api


ConsoleApiDep = Annotated[ConsoleApi, Depends(console_api)]
