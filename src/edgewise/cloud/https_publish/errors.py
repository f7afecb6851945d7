"""The errors of HTTPS publish: each refused request is answered with AWS IoT's status and error type.

EdgewiseError
 ├── PublishRefusedError              a request answered with an error (``status``, ``error_type``)
 │    ├── InvalidPublishRequestError  400 InvalidRequestException: a malformed request or parameter
 │    ├── PublishForbiddenError       403 ForbiddenException: the certificate or its policy does not allow it
 │    ├── PublishTargetNotFoundError  404 ResourceNotFoundException: a path other than ``/topics/<topic>``
 │    ├── PublishMethodNotAllowedError  405 MethodNotAllowedException: a method other than POST
 │    ├── PublishPayloadTooLargeError  413 RequestEntityTooLargeException: a body over the payload limit
 │    ├── PublishUnavailableError     503 ServiceUnavailableException: the broker did not take the message
 │    ├── UploadLengthRequiredError   411 LengthRequiredException: an object upload without Content-Length
 │    ├── UploadDigestMismatchError   400 BadDigestException: an object whose bytes miss their SHA-256
 │    └── UploadUnavailableError      503 ServiceUnavailableException: the object store failed
 └── HttpsPublishStartError           the listener cannot start
"""

from __future__ import annotations

from typing import ClassVar

from edgewise.errors import EdgewiseError


class PublishRefusedError(EdgewiseError):
    """A publish request refused; ``status`` and ``error_type`` (AWS's ``x-amzn-ErrorType``) shape the answer,
    ``detail`` says why (the answer's ``message``, except where :attr:`public_message` hides it)."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "InternalFailureException"
    #: What the answer says instead of ``detail``, when the detail is for the cloud's log only.
    public_message: ClassVar[str | None] = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def message(self) -> str:
        """The ``message`` of the JSON answer."""
        return self.public_message or self.detail


class InvalidPublishRequestError(PublishRefusedError):
    """A request line, query parameter or header that breaks a rule; the detail names it and the problem."""

    status = 400
    error_type = "InvalidRequestException"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class PublishForbiddenError(PublishRefusedError):
    """The certificate may not publish on the topic. The answer says only ``Forbidden``, as AWS's does; the
    detail goes to the cloud's log with the trace id."""

    status = 403
    error_type = "ForbiddenException"
    public_message = "Forbidden"

    def __init__(self, detail: str, *, identity_lost: bool = False) -> None:
        super().__init__(detail)
        #: The certificate itself is refused (not ACTIVE, deleted, attached to no thing): the connection closes.
        self.identity_lost = identity_lost


class PublishTargetNotFoundError(PublishRefusedError):
    """A path that is not ``/topics/<topic>``."""

    status = 404
    error_type = "ResourceNotFoundException"


class PublishMethodNotAllowedError(PublishRefusedError):
    """A method other than POST on ``/topics/<topic>``."""

    status = 405
    error_type = "MethodNotAllowedException"


class PublishPayloadTooLargeError(PublishRefusedError):
    """A body larger than a message may be; the connection closes, the rest of the body unread."""

    status = 413
    error_type = "RequestEntityTooLargeException"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The payload exceeds the maximum size allowed ({limit} bytes)")
        self.limit = limit


class PublishUnavailableError(PublishRefusedError):
    """The broker did not acknowledge the message in time (or refused it); the device may send it again."""

    status = 503
    error_type = "ServiceUnavailableException"


class HttpsPublishStartError(EdgewiseError):
    """The HTTPS publish listener cannot start: its port is in use or its TLS files cannot be used."""


class UploadLengthRequiredError(PublishRefusedError):
    """An object upload without ``Content-Length``: its size must be known before any byte is stored."""

    status = 411
    error_type = "LengthRequiredException"


class UploadDigestMismatchError(PublishRefusedError):
    """An object upload whose bytes do not have the SHA-256 its ``x-amz-content-sha256`` header declared;
    nothing is stored."""

    status = 400
    error_type = "BadDigestException"


class UploadUnavailableError(PublishRefusedError):
    """The object store could not take an upload; the device may send it again."""

    status = 503
    error_type = "ServiceUnavailableException"
