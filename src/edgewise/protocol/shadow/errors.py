"""Errors of a shadow request (the runtime's local shadows and the cloud's), each carrying AWS IoT's error code.

    EdgewiseError
     └── ShadowError                    ``code`` = the HTTP-style status AWS IoT puts in error documents
          ├── InvalidShadowRequestError  (400) a malformed request or an invalid name
          ├── ShadowNotFoundError        (404) no such shadow
          ├── ShadowVersionConflictError (409) the request's ``version`` is not the shadow's version
          └── PayloadTooLargeError       (413) the request or the resulting state exceeds the size limit

The runtime's IPC service maps them to InvalidArgumentsError, ResourceNotFoundError and ConflictError; the
cloud's MQTT and REST front ends use :attr:`ShadowError.code` as it is. AWS IoT's codes and messages:
https://docs.aws.amazon.com/iot/latest/developerguide/device-shadow-error-messages.html.
"""

from __future__ import annotations

from typing import ClassVar

from edgewise.errors import EdgewiseError


class ShadowError(EdgewiseError):
    """A shadow request that was rejected; ``message`` is the text of the AWS error document."""

    code: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidShadowRequestError(ShadowError):
    """The request, its JSON, or a thing or shadow name is not acceptable."""

    code = 400


class ShadowNotFoundError(ShadowError):
    """The shadow does not exist (never created, or deleted)."""

    code = 404

    def __init__(self, thing_name: str, shadow_name: str) -> None:
        label = shadow_name or "Unnamed Shadow"
        super().__init__(f"No shadow exists with name: '{label}' for thing '{thing_name}'")
        self.thing_name = thing_name
        self.shadow_name = shadow_name


class ShadowVersionConflictError(ShadowError):
    """An update named a version other than the shadow's current one."""

    code = 409

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"Version conflict: the request expects version {expected}, the shadow is at {current}"
        )
        self.expected = expected
        self.current = current


class PayloadTooLargeError(ShadowError):
    """The request, or the state it would produce, is larger than the configured limit."""

    code = 413

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"The payload exceeds the maximum size allowed: {what} is {size} bytes, the limit is {limit}"
        )
        self.size = size
        self.limit = limit
