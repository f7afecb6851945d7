"""The console's only way to the cloud's data: its own REST API, called in process with the session's token.

Because every read and write goes through the API, the console has the API's roles and rules: a read-only token
sees everything, and a change it asks for is refused by the API with the API's own message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import Any

import httpx
from starlette.types import ASGIApp

from edgewise.errors import EdgewiseError

#: Where the REST API lives inside the app the console is served by.
API_BASE = "http://console.internal/api/v1"


class ConsoleApiError(EdgewiseError):
    """The API answered a console request with an error: ``status`` and the API's ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConsoleApi:
    """An in-process client of the REST API that sends one token; use ``async with``.

    Paths are relative to ``/api/v1`` (``api.get("/things")``). Each method returns the parsed JSON body
    (``None`` for an empty one) or raises :class:`ConsoleApiError` for a non-2xx answer.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=API_BASE,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def __aenter__(self) -> ConsoleApi:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client."""
        await self._client.aclose()

    async def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with the query ``params`` (``None`` values left out)."""
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any = None, **params: Any) -> Any:
        """POST ``body`` as JSON to ``path``."""
        return await self.request("POST", path, params=params, json=body)

    async def put(self, path: str, body: Any = None, **params: Any) -> Any:
        """PUT ``body`` as JSON to ``path``."""
        return await self.request("PUT", path, params=params, json=body)

    async def patch(self, path: str, body: Any = None, **params: Any) -> Any:
        """PATCH ``body`` as JSON to ``path``."""
        return await self.request("PATCH", path, params=params, json=body)

    async def delete(self, path: str, **params: Any) -> Any:
        """DELETE ``path``."""
        return await self.request("DELETE", path, params=params)

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Any:
        """Send one request; the parsed JSON answer, or :class:`ConsoleApiError` with the API's message."""
        query = {name: value for name, value in (params or {}).items() if value is not None}
        response = await self._client.request(
            method, path, params=query, json=json if method != "GET" and json is not None else None
        )
        if response.is_error:
            raise ConsoleApiError(response.status_code, _message(method, path, response))
        return response.json() if response.content else None


async def gather(*calls: Awaitable[Any]) -> list[Any]:
    """Await API calls concurrently; their answers in order, or the first one's error once all have ended.

    Unlike :func:`asyncio.gather`, a failure does not leave the other calls running after the page's request
    (and its API client) has ended.
    """
    answers = await asyncio.gather(*calls, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers


def _message(method: str, path: str, response: httpx.Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return f"{method} {path} answered {response.status_code}"
