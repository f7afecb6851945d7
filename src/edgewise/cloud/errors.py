"""The errors the cloud raises on purpose, and their JSON shape; ``app.py`` maps each ``CloudError`` to an HTTP
status.

EdgewiseError
 ├── CloudStartError               the cloud cannot start (``edgewise cloud up``); never an API answer
 └── CloudError                    carries ``code`` (a stable machine-readable string)
      ├── InvalidRequestError      a field with a bad value (``field``, ``problem``)
      ├── NotFoundError            no such resource (``kind``, ``name``)
      ├── CloudConflictError       the request clashes with the current state
      │    ├── AlreadyExistsError  a resource with that name exists (``kind``, ``name``)
      │    ├── VersionConflictError  the expected version is not the current one
      │    └── LimitExceededError  a documented limit would be exceeded
      ├── AuthenticationError      no token, or a token we do not know
      ├── PermissionDeniedError    the token's role does not allow the request
      └── MlUnavailableError       the ML libraries are not installed (503)
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from edgewise.errors import EdgewiseError


class CloudStartError(EdgewiseError):
    """The cloud cannot start: bad options, a port in use, or a data directory it cannot use."""


class CloudError(EdgewiseError):
    """Base class of the cloud's errors; ``code`` is what API clients match on."""

    code: ClassVar[str] = "error"


class InvalidRequestError(CloudError):
    """A value that breaks a rule; the message names the field and the problem."""

    code = "invalid_request"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Field {field!r} is invalid: {problem}")
        self.field = field
        self.problem = problem


class NotFoundError(CloudError):
    """A named resource that does not exist."""

    code = "not_found"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} does not exist")
        self.kind = kind
        self.name = name


class CloudConflictError(CloudError):
    """A request that the current state does not allow."""

    code = "conflict"


class AlreadyExistsError(CloudConflictError):
    """A resource with the same name exists already."""

    code = "already_exists"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} already exists")
        self.kind = kind
        self.name = name


class VersionConflictError(CloudConflictError):
    """An update that expected another version of the resource (optimistic locking)."""

    code = "version_conflict"

    def __init__(self, kind: str, name: str, *, expected: int, actual: int) -> None:
        super().__init__(f"{kind} {name!r} is at version {actual}, not the expected version {expected}")
        self.kind = kind
        self.name = name
        self.expected = expected
        self.actual = actual


class LimitExceededError(CloudConflictError):
    """A change that would exceed one of the documented limits (AWS IoT quotas)."""

    code = "limit_exceeded"


class AuthenticationError(CloudError):
    """A request without a valid API token."""

    code = "unauthenticated"


class PermissionDeniedError(CloudError):
    """A valid token whose role does not allow the request."""

    code = "forbidden"


class MlUnavailableError(CloudError):
    """A dataset, training or model request on a cloud installed without the ML libraries."""

    code = "ml_unavailable"

    def __init__(self, missing: str) -> None:
        super().__init__(
            f"The cloud cannot do this: the ML libraries are not installed ({missing}); "
            "install them with pip install 'edgewise[ml]' and restart the cloud"
        )
        self.missing = missing


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    code: str
    message: str


# Documented on every router, so the OpenAPI schema describes each error the API can answer with.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "No valid API token",
        403: "The token's role does not allow this",
        404: "No such resource",
        409: "Conflicts with the current state",
        422: "Invalid request; the message names the field",
    }.items()
}
