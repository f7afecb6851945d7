"""The Jobs protocol's errors: a request refused on ``/rejected`` and a reply or notification that does not
parse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgewise.errors import EdgewiseError
from edgewise.protocol.jobs._replies import Rejected


class JobsRejection(EdgewiseError):
    """A request answered on ``/rejected``: AWS's error ``code``, a message and, for InvalidStateTransition and
    VersionMismatch, the execution's state (an :class:`ExecutionState`'s JSON object)."""

    def __init__(self, code: str, message: str, *, execution_state: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.execution_state = execution_state

    def payload(self, *, client_token: str | None, timestamp: int) -> dict[str, Any]:
        """The ``/rejected`` body."""
        body = Rejected(self.code, str(self), timestamp=timestamp, client_token=client_token).payload()
        if self.execution_state is not None:
            body["executionState"] = dict(self.execution_state)
        return body


def invalid(field: str, problem: str) -> JobsRejection:
    """An InvalidRequest naming ``field``."""
    return JobsRejection("InvalidRequest", f"Field {field!r} is invalid: {problem}")


class JobsPayloadError(EdgewiseError):
    """A reply or notification that does not parse; the message names the field's path and the problem."""

    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(problem if field is None else f"Field {field!r} is invalid: {problem}")
        self.field = field
