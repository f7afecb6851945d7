"""Request body limits of the REST API, enforced before the app reads a byte of a body.

FastAPI reads a request's body before it solves the route's dependencies, so the token check there would come
after an unauthenticated client had made the server hold its whole body. :class:`BodyLimits` is pure ASGI middleware in
front of the app: for a request that carries a body (a ``Content-Length`` above 0, or a chunked
``Transfer-Encoding``) it first authenticates the bearer token (401 ``unauthenticated``), then refuses a declared
``Content-Length`` above the route's limit (413 ``payload_too_large``), and counts what a chunked body streams,
refusing it (413) as soon as it passes the limit. Both answers close the connection, so the unread rest of the
body is never read. Every route takes ``default`` bytes, except those given their own limit (artifact
uploads, which stream to disk). Requests without a body go to the app, whose dependencies authenticate them.
Paths matching ``session_paths`` (the web console's forms) carry a session cookie, not a bearer token: their
routes authenticate them, and only the body limit applies here.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgewise.cloud.errors import AuthenticationError

#: What a request without a usable ``Authorization: Bearer`` header is told.
NO_TOKEN = "The request has no 'Authorization: Bearer <token>' header"  # noqa: S105 (a message)
PAYLOAD_TOO_LARGE = "payload_too_large"
#: Authenticates a bearer token (None: there is none); raises AuthenticationError. Blocks (database).
Authenticator = Callable[[str | None], None]


@dataclass(frozen=True)
class RouteLimit:
    """The body limit of the requests whose method is ``method`` and whose path matches ``path``."""

    method: str
    path: re.Pattern[str]
    max_bytes: int


def too_large_message(limit: int) -> str:
    """What a request whose body passes ``limit`` is told."""
    return f"The request body is larger than the {limit} bytes this operation accepts"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class BodyLimits:
    """ASGI middleware: authenticate, then cap the body, before the app reads it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Authenticator,
        default: int,
        routes: Sequence[RouteLimit] = (),
        session_paths: re.Pattern[str] | None = None,
    ) -> None:
        self._app = app
        self._session_paths = session_paths
        self._authenticate = authenticate
        self._default = default
        self._routes = list(routes)

    def limit_of(self, method: str, path: str) -> int:
        """The body limit of a ``method`` request to ``path``."""
        for route in self._routes:
            if route.method == method and route.path.fullmatch(path):
                return route.max_bytes
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        declared = headers.get("content-length", "")
        length = int(declared) if declared.isdigit() else None
        if not (length or "transfer-encoding" in headers):
            await self._app(scope, receive, send)
            return
        try:
            if self._session_paths is None or not self._session_paths.match(scope["path"]):
                await asyncio.to_thread(self._authenticate, bearer_token(headers.get("authorization")))
        except AuthenticationError as exc:
            await _refuse(send, 401, AuthenticationError.code, str(exc), {"WWW-Authenticate": "Bearer"})
            return
        limit = self.limit_of(scope["method"], scope["path"])
        if length is not None and length > limit:
            message = f"{scope['method']} {scope['path']}: {too_large_message(limit)}"
            await _refuse(send, 413, PAYLOAD_TOO_LARGE, message)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException is what FastAPI lets through from reading a body; the app's handler
                    # turns it into the same 413 answer as above.
                    raise HTTPException(413, too_large_message(limit), headers={"Connection": "close"})
            return message

        await self._app(scope, counted, send)


async def _refuse(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
