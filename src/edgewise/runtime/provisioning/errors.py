"""What can go wrong provisioning a device by claim, and the error a ``/rejected`` reply stands for.

Errors::

    ClaimError                     (edgewise.errors.EdgewiseError)
     ├── ClaimConnectionError      the broker could not be reached, refused the claim certificate or hung up
     ├── ClaimNotAuthorizedError   the broker kept refusing a provisioning topic until the deadline
     ├── ClaimTimeoutError         nothing answered a step before the deadline (names the step)
     └── ClaimRejectedError        the cloud answered on /rejected (AWS's statusCode, errorCode, errorMessage)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgewise.errors import EdgewiseError
from edgewise.protocol.provisioning import parse_rejection


class ClaimError(EdgewiseError):
    """Provisioning by claim failed; the message says which step and why."""


class ClaimConnectionError(ClaimError):
    """The broker could not be reached, refused the claim certificate, or closed the connection."""


class ClaimNotAuthorizedError(ClaimError):
    """The broker refused to let the claim certificate use a provisioning topic until the deadline."""

    def __init__(self, topic: str, action: str, reason: str) -> None:
        super().__init__(
            f"The broker refused to let the claim certificate {action} {topic} ({reason}); "
            "does the claim certificate's policy allow that topic?"
        )
        self.topic = topic


class ClaimTimeoutError(ClaimError):
    """Nothing answered a step before its deadline."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"No answer from {what} within {timeout:g} s")
        self.what = what


class ClaimRejectedError(ClaimError):
    """The cloud refused a request on its ``/rejected`` topic."""

    def __init__(self, operation: str, status_code: int, error_code: str, message: str) -> None:
        super().__init__(f"{operation} was rejected: {error_code} ({status_code}): {message}")
        self.operation = operation
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = message


def rejection(operation: str, answer: Mapping[str, Any]) -> ClaimRejectedError:
    """The error a ``/rejected`` reply to ``operation`` stands for (AWS's error payload; missing parts made up)."""
    rejected = parse_rejection(answer)
    return ClaimRejectedError(operation, rejected.status_code, rejected.error_code, rejected.error_message)
