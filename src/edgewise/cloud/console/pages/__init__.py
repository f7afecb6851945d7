"""The console's pages, one module each with ``router = APIRouter()``, and what every page module uses.

A page module imports its helpers from here: ``ConsoleApiDep`` (the session's REST API client),
``ConsoleSessionDep`` (the session), ``render`` (a template to a response), ``is_fragment_request``, and
``ConsoleApiError`` (an API refusal: ``status`` and the API's ``message``), ``gather`` (API calls made
concurrently; use it rather than :func:`asyncio.gather`, which leaves calls running after a failure) and
``listing`` (a list page with its create form). See console/app.py for how to add a page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgewise.cloud.console.api import ConsoleApi as ConsoleApi
from edgewise.cloud.console.api import ConsoleApiError as ConsoleApiError
from edgewise.cloud.console.api import gather as gather
from edgewise.cloud.console.dependencies import ConsoleApiDep as ConsoleApiDep
from edgewise.cloud.console.dependencies import ConsoleSessionDep as ConsoleSessionDep
from edgewise.cloud.console.rendering import is_fragment_request as is_fragment_request
from edgewise.cloud.console.rendering import render as render

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

#: How many items a list page asks the API for.
LIST_SIZE = 500


async def listing(
    request: Request,
    api: ConsoleApi,
    resource: str,
    template: str,
    *,
    title: str,
    error: str | None = None,
    status_code: int = 200,
    entered: dict[str, Any] | None = None,
) -> Response:
    """The list page of an API collection (``/rules``, ``/policies``, ...) with its create form; after a refused
    create, again with the API's message and what was typed."""
    page = await api.get(f"/{resource}", limit=LIST_SIZE)
    return render(
        request, template, status_code=status_code, title=title, page=page, error=error, entered=entered or {}
    )


__all__ = [
    "ConsoleApi",
    "ConsoleApiDep",
    "ConsoleApiError",
    "ConsoleSessionDep",
    "gather",
    "is_fragment_request",
    "listing",
    "render",
]
