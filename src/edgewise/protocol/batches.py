"""The batch conversation a device holds with the cloud: what telemetry exports and log uploads share.

The device publishes a batch (QoS 1, compact JSON with a ``clientToken``) on
``$aws/things/<thing>/edgewise/<kind>/batch``; once the batch is stored the cloud answers on ``.../accepted``
with what it stored, or refuses it on ``.../rejected`` with a :class:`BatchRejection`, echoing the token. Each
kind's module (:mod:`edgewise.protocol.telemetry`, :mod:`edgewise.protocol.logs`) defines its batch and its
acceptance; this module holds the topics, the token, the rejection and the reading of a reply's envelope.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

#: The largest batch, the size of a message from a device (docs/device-protocol.md).
MAX_BATCH_BYTES: Final = 128 * 1024
CLIENT_TOKEN_MAX_LENGTH: Final = 64

Outcome = Literal["accepted", "rejected"]
ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"
#: Why a batch was refused: it is malformed (do not resend it as it is), the cloud is busy, or the cloud failed
#: to store it (both worth resending; the cloud stores every item once whatever is resent).
RejectionCode = Literal["InvalidPayload", "Throttled", "InternalError"]
INVALID_PAYLOAD: Final = "InvalidPayload"
THROTTLED: Final = "Throttled"
INTERNAL_ERROR: Final = "InternalError"
_CODES: Final[frozenset[str]] = frozenset({INVALID_PAYLOAD, THROTTLED, INTERNAL_ERROR})
_THINGS = ("$aws", "things")
_SEPARATORS = (",", ":")


@dataclass(frozen=True)
class BatchRejection:
    """The cloud refused a batch. ``client_token`` is None when the batch carried no readable one. A reply
    with a code this module does not know reads as ``InternalError``."""

    client_token: str | None
    code: RejectionCode
    message: str


@dataclass(frozen=True)
class BatchTopics:
    """The topics of one kind of batch (``telemetry``, ``logs``)."""

    kind: str

    @property
    def filter(self) -> str:
        """What the cloud subscribes to: every thing's batches of this kind."""
        return self.batch_topic("+")

    def batch_topic(self, thing: str) -> str:
        """The topic ``thing`` publishes its batches on."""
        return "/".join((*_THINGS, thing, "edgewise", self.kind, "batch"))

    def reply_topic(self, thing: str, outcome: Outcome) -> str:
        """The topic the cloud answers ``thing``'s batches on."""
        return f"{self.batch_topic(thing)}/{outcome}"

    def thing_of_batch(self, topic: str) -> str | None:
        """The thing a batch topic names, or None when ``topic`` is not a batch topic of this kind."""
        parts = topic.split("/")
        if (
            len(parts) == 6
            and tuple(parts[:2]) == _THINGS
            and tuple(parts[3:]) == ("edgewise", self.kind, "batch")
        ):
            return parts[2] or None
        return None


def dumps(body: Any) -> bytes:
    """``body`` as compact JSON, the way batches and replies are written (so their sizes are known)."""
    return json.dumps(body, separators=_SEPARATORS).encode()


def valid_token(token: Any) -> str | None:
    """``token`` when it is a client token (a string of 1 to :data:`CLIENT_TOKEN_MAX_LENGTH` characters)."""
    return token if isinstance(token, str) and 0 < len(token) <= CLIENT_TOKEN_MAX_LENGTH else None


def client_token_of(payload: bytes) -> str | None:
    """The batch's ``clientToken`` when it has a valid one, to echo even in a rejection."""
    if len(payload) > MAX_BATCH_BYTES:
        return None
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return valid_token(body.get("clientToken")) if isinstance(body, dict) else None


def build_rejection(reply: BatchRejection) -> bytes:
    """The payload of ``reply``."""
    body: dict[str, Any] = {}
    if reply.client_token is not None:
        body["clientToken"] = reply.client_token
    body.update(code=reply.code, message=reply.message)
    return dumps(body)


def count(value: Any) -> int | None:
    """``value`` when it is a count (a non-negative integer)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def read_reply(
    topics: BatchTopics, topic: str, payload: bytes
) -> BatchRejection | tuple[str | None, dict[str, Any]] | None:
    """A rejection that arrived on ``topic``; for an acceptance, its token and body for the kind's module to
    read; None when it is not a reply (not a reply topic of ``topics``, not a JSON object)."""
    outcome = topic.rsplit("/", 1)[-1]
    if outcome not in (ACCEPTED, REJECTED) or topics.thing_of_batch(topic.rsplit("/", 1)[0]) is None:
        return None
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    token = body.get("clientToken")
    token = token if isinstance(token, str) else None
    if outcome == ACCEPTED:
        return token, body
    code, message = body.get("code"), str(body.get("message"))
    if code not in _CODES:
        return BatchRejection(token, INTERNAL_ERROR, f"{code!r:.100}: {message}")
    known: RejectionCode = code
    return BatchRejection(token, known, message)
