"""Being told after the API's successful writes: an ASGI wrapper, and the paths whose writes may change what a
device is allowed to do.

Parts that keep something derived from the store (the broker's ACL, the authorization hook's cache, the jobs
engine's view of group membership, a worker's wake-up) wrap the API in :class:`NotifyOnWrite` rather than
hooking each route: any write under a path may change what they derived.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The API paths whose writes can change what a device may do (an artifact upload, a published component, a
#: job or a deployment never does).
AUTHORIZATION_PATHS = tuple(
    f"/api/v1/{resource}"
    for resource in (
        "things",
        "thing-groups",
        "certificates",
        "claim-certificates",
        "policies",
        "core-devices",
    )
)


class NotifyOnWrite:
    """ASGI wrapper calling ``notify`` after each write request the API answered with success (only those
    under one of ``paths``, when given)."""

    def __init__(self, app: ASGIApp, notify: Callable[[], None], *, paths: tuple[str, ...] = ("/",)) -> None:
        self._app = app
        self._notify = notify
        self._paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or not str(scope["path"]).startswith(self._paths)
        ):
            await self._app(scope, receive, send)
            return
        statuses: list[int] = []

        async def send_recording_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        await self._app(scope, receive, send_recording_status)
        if statuses and statuses[0] < 400:
            self._notify()
