"""Console sessions and one-time login links, kept in the server's memory only.

A session is a random id (the ``edgewise_session`` cookie: HttpOnly, SameSite=Strict, Secure over https) that
maps to the API token it was opened with, the token's name and role, and the session's CSRF token. The token's
secret stays in this process: it is never put in a page, a URL or a log line. A session ends at logout, or after
:data:`SESSION_IDLE` without a request. A login link carries a random code, good for one use within
:data:`LINK_LIFETIME`, that opens a session for the token that made it.
"""

from __future__ import annotations

import datetime
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from edgewise.cloud.errors import LimitExceededError
from edgewise.errors import EdgewiseError

SESSION_COOKIE = "edgewise_session"
SESSION_IDLE = datetime.timedelta(hours=8)
LINK_LIFETIME = datetime.timedelta(minutes=10)
#: At most this many sessions and this many unused links are kept: the oldest session is ended to make room,
#: and a link beyond the limit is refused, so that neither logins nor link requests can grow the server's memory.
MAX_SESSIONS = 10_000
MAX_LINKS = 1_000

Clock = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.datetime.now(datetime.UTC)


class LoginRequiredError(EdgewiseError):
    """A console request without a live session: a page is sent to the login form, anything else is refused."""


@dataclass
class ConsoleSession:
    """One logged-in browser: the token it acts with, and the CSRF token its forms carry."""

    id: str
    token: str = field(repr=False)
    token_name: str
    role: str
    csrf_token: str = field(repr=False)
    last_used: datetime.datetime


@dataclass(frozen=True)
class LoginLink:
    """A one-time login code and the token it opens a session for."""

    code: str
    token: str = field(repr=False)
    expires_at: datetime.datetime


class ConsoleSessions:
    """The live sessions and unused login links of one console; thread-safe."""

    def __init__(self, *, clock: Clock = utcnow, idle: datetime.timedelta = SESSION_IDLE) -> None:
        self._clock = clock
        self._idle = idle
        self._sessions: dict[str, ConsoleSession] = {}
        self._links: dict[str, LoginLink] = {}
        self._lock = threading.Lock()

    def open(self, token: str, *, token_name: str, role: str) -> ConsoleSession:
        """A new session acting with ``token`` (already authenticated by the caller)."""
        session = ConsoleSession(
            id=secrets.token_urlsafe(32),
            token=token,
            token_name=token_name,
            role=role,
            csrf_token=secrets.token_urlsafe(32),
            last_used=self._clock(),
        )
        with self._lock:
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda live: live.last_used)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def find(self, session_id: str | None) -> ConsoleSession | None:
        """The live session of this id (and mark it used), or None: unknown, ended, or idle too long."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_used > self._idle:
                del self._sessions[session_id]
                return None
            session.last_used = now
            return session

    def close(self, session_id: str | None) -> None:
        """End the session, if it is live."""
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def create_link(self, token: str) -> LoginLink:
        """A new one-time login link for ``token``.

        Raises:
            LimitExceededError: :data:`MAX_LINKS` links are waiting to be used.
        """
        link = LoginLink(secrets.token_urlsafe(32), token, self._clock() + LINK_LIFETIME)
        with self._lock:
            self._drop_expired_links()
            if len(self._links) >= MAX_LINKS:
                raise LimitExceededError(
                    f"{MAX_LINKS} login links are waiting to be used; try again once some are used or expire"
                )
            self._links[link.code] = link
        return link

    def redeem_link(self, code: str) -> str | None:
        """The token of an unused, unexpired link (now used up), or None."""
        with self._lock:
            self._drop_expired_links()
            link = self._links.pop(code, None)
        return None if link is None else link.token

    def _drop_expired_links(self) -> None:
        now = self._clock()
        for code in [code for code, link in self._links.items() if link.expires_at <= now]:
            del self._links[code]
