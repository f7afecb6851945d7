"""Logging in and out: the token form, one-time login links, and logout.

The login form has no session yet, so it is protected from CSRF by a double-submit token: a random value set in
an HttpOnly, SameSite=Strict cookie when the form is shown and carried by the form; the POST must carry both,
equal. A successful login sets the session cookie and goes to the page that asked for it (``next``, a console
path) or the fleet.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from edgewise.cloud.auth import service as auth_service
from edgewise.cloud.auth.models import ApiToken
from edgewise.cloud.console.csrf import CSRF_FIELD, check_token
from edgewise.cloud.console.dependencies import console_sessions, require_csrf
from edgewise.cloud.console.rendering import CONSOLE_PREFIX, render
from edgewise.cloud.console.session import SESSION_COOKIE, ConsoleSessions
from edgewise.cloud.errors import AuthenticationError

LOGIN_CSRF_COOKIE = "edgewise_login_csrf"
LOGIN_PATH = f"{CONSOLE_PREFIX}/login"
HOME = f"{CONSOLE_PREFIX}/"

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """``target`` if it is a console path on this server, else the fleet (no open redirect)."""
    if target and target.startswith(CONSOLE_PREFIX + "/") and not target.startswith(LOGIN_PATH):
        return target
    return HOME


def _login_form(
    request: Request, *, next_path: str, error: str | None = None, status_code: int = 200
) -> Response:
    form_token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        login_csrf=form_token,
        next_path=next_path,
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        form_token,
        max_age=3600,
        path=LOGIN_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _token_of(request: Request, secret: str) -> ApiToken:
    with request.app.state.services.sessions() as session:
        return auth_service.authenticate(session, secret)


async def _open_session(request: Request, secret: str, next_path: str) -> Response | None:
    """Redirect to ``next_path`` with a new session cookie, or None when ``secret`` is no valid token."""
    try:
        token = await run_in_threadpool(_token_of, request, secret)
    except AuthenticationError:
        return None
    sessions: ConsoleSessions = console_sessions(request)
    session = sessions.open(secret, token_name=token.name, role=token.role.value)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    """The login form (or the console, for a browser that has a live session)."""
    if console_sessions(request).find(request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, next_path=_safe_next(next))


@router.post("/login")
async def log_in(
    request: Request,
    token: Annotated[str, Form(max_length=512)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=512)] = "",
    next: Annotated[str, Form(max_length=2048)] = HOME,
) -> Response:
    """Open a session for the API token typed into the form."""
    check_token(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE, ""))
    next_path = _safe_next(next)
    opened = await _open_session(request, token.strip(), next_path) if token.strip() else None
    if opened is None:
        message = (
            "That is not a valid API token (unknown or revoked)" if token.strip() else "Enter an API token"
        )
        return _login_form(request, next_path=next_path, error=message, status_code=401)
    return opened


@router.get("/login/{code}")
async def log_in_with_link(request: Request, code: str) -> Response:
    """Open a session from a one-time login link (``edgewise console login-link``)."""
    secret = console_sessions(request).redeem_link(code)
    opened = await _open_session(request, secret, HOME) if secret is not None else None
    if opened is None:
        error = "This login link has been used, has expired, or its token was revoked; make a new one"
        return _login_form(request, next_path=HOME, error=error, status_code=410)
    return opened


@router.post("/logout", dependencies=[Depends(require_csrf)])
def log_out(request: Request) -> Response:
    """End the session and go back to the login form."""
    console_sessions(request).close(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
