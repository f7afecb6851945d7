"""Errors of the stream manager's message streams, each naming the SDK status code it is answered with.

    EdgewiseError
     └── StreamError                     ``status`` = the SDK's ``ResponseStatusCode`` member name
          ├── StreamNotFoundError         ResourceNotFound: no stream of that name
          ├── InvalidStreamRequestError   InvalidRequest: a field with a bad value, or a stream that exists
          │    ├── StreamUpdateNotAllowedError  UpdateNotAllowed: a field an update may not change
          │    └── StreamFullError        InvalidRequest: an append to a full ``RejectNewData`` stream
          ├── StreamPayloadTooLargeError  RequestPayloadTooLarge: a message larger than a stream accepts
          ├── StreamResponseTooLargeError ResponsePayloadTooLarge: a read whose minimum exceeds the answer limit
          ├── NotEnoughMessagesError      NotEnoughMessages: fewer messages than asked for, before the timeout
          ├── StreamReadError             MessageStoreReadError: stored data that cannot be read back
          ├── StreamWriteError            UnknownFailure: a message the disk did not take (nothing is kept)
          └── StreamClosedError           UnknownFailure: the store was closed while the request waited

The protocol server answers each with its ``status`` and the message as ``error_message``; the SDK turns
that into the exception of the same name (``UpdateNotAllowedException`` is an ``InvalidRequestException``
there too, hence the nesting here). Greengrass does not document the code of an append refused by a full
``RejectNewData`` stream (the SDK only says it "will be rejected with an exception"); InvalidRequest is our
choice. A read from a sequence number already removed is no error: it starts at the oldest message kept, as
``ReadMessagesOptions`` documents.
"""

from __future__ import annotations

from typing import ClassVar

from edgewise.errors import EdgewiseError


class StreamError(EdgewiseError):
    """A stream request that failed; ``status`` names the SDK ``ResponseStatusCode`` it is answered with."""

    status: ClassVar[str] = "UnknownFailure"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamNotFoundError(StreamError):
    """No stream of that name exists."""

    status = "ResourceNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"Message stream {name!r} does not exist")
        self.name = name


class InvalidStreamRequestError(StreamError):
    """A request field with a value the stream manager does not accept; ``field`` names it."""

    status = "InvalidRequest"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StreamUpdateNotAllowedError(InvalidStreamRequestError):
    """An update tried to change a field that cannot change once the stream exists."""

    status = "UpdateNotAllowed"


class StreamFullError(InvalidStreamRequestError):
    """An append to a ``RejectNewData`` stream that has reached its ``max_size``."""

    def __init__(self, name: str, max_size: int) -> None:
        super().__init__(
            f"Message stream {name!r} is full (max_size {max_size} bytes, strategy_on_full RejectNewData); "
            "the message was not appended",
            field="payload",
        )
        self.name = name
        self.max_size = max_size


class StreamPayloadTooLargeError(StreamError):
    """A message payload larger than the stream can ever hold or the store accepts."""

    status = "RequestPayloadTooLarge"

    def __init__(self, name: str, size: int, limit: int) -> None:
        super().__init__(
            f"payload of {size} bytes is larger than the {limit} bytes message stream {name!r} accepts"
        )
        self.name = name
        self.size = size
        self.limit = limit


class StreamResponseTooLargeError(StreamError):
    """A read whose ``min_message_count`` messages would not fit in one answer."""

    status = "ResponsePayloadTooLarge"


class NotEnoughMessagesError(StreamError):
    """A read found fewer messages than ``min_message_count`` before its timeout ran out."""

    status = "NotEnoughMessages"


class StreamReadError(StreamError):
    """Stored messages that cannot be read back (a damaged segment, an I/O error)."""

    status = "MessageStoreReadError"


class StreamWriteError(StreamError):
    """The disk refused a message (full, I/O error); the partial record was cut away."""


class StreamClosedError(StreamError):
    """The store was closed, or the stream deleted, while the request was being served."""
