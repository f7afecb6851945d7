"""The requests a device sends on the Jobs topics: the :class:`Request` model, which fields each operation takes,
the payload a device builds and the checks the cloud makes when it reads one."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgewise.protocol.jobs._rules import (
    CLIENT_TOKEN_MAX_LENGTH,
    DEVICE_STATUSES,
    STATUS_DETAIL_KEY_MAX_LENGTH,
    STATUS_DETAIL_KEY_PATTERN,
    STATUS_DETAIL_VALUE_MAX_LENGTH,
    STEP_TIMEOUT_MAX_MINUTES,
    ExecutionStatus,
    OperationKind,
    has_control_characters,
)
from edgewise.protocol.jobs.errors import JobsRejection, invalid

_MAX_NUMBER = 2**63 - 1
_DETAIL_KEY = re.compile(STATUS_DETAIL_KEY_PATTERN)


@dataclass(frozen=True)
class Request:
    """A request's fields; those an operation does not take keep their defaults (see :data:`REQUEST_FIELDS`)."""

    client_token: str | None = None
    status: ExecutionStatus | None = None
    status_details: Mapping[str, str] | None = None
    expected_version: int | None = None
    execution_number: int | None = None
    include_job_execution_state: bool = False
    #: Describe includes the document unless told otherwise; update only when asked.
    include_job_document: bool | None = None
    #: Minutes; -1 stops the step timer (update only).
    step_timeout_in_minutes: int | None = None


#: Each request field's JSON key, in the order a payload lists them.
_KEYS: Final = {
    "status": "status",
    "client_token": "clientToken",
    "status_details": "statusDetails",
    "expected_version": "expectedVersion",
    "execution_number": "executionNumber",
    "include_job_execution_state": "includeJobExecutionState",
    "include_job_document": "includeJobDocument",
    "step_timeout_in_minutes": "stepTimeoutInMinutes",
}
#: The fields (besides ``client_token``) each operation takes, in the order they are checked.
REQUEST_FIELDS: Final[Mapping[OperationKind, tuple[str, ...]]] = {
    "get_pending": (),
    "start_next": ("status_details", "step_timeout_in_minutes"),
    "describe": ("execution_number", "include_job_document"),
    "update": (
        "status",
        "status_details",
        "expected_version",
        "execution_number",
        "include_job_execution_state",
        "include_job_document",
        "step_timeout_in_minutes",
    ),
}
_DEFAULT = Request()


def request_payload(kind: OperationKind, request: Request) -> bytes:
    """The payload of a request of ``kind``: the fields that differ from their defaults, ``status`` first.

    Raises:
        ValueError: ``request`` sets a field the operation does not take, or an update has no status.
    """
    taken = REQUEST_FIELDS[kind]
    if kind == "update" and request.status is None:
        raise ValueError("Field 'status' is required in an update")
    body: dict[str, Any] = {}
    for name, key in _KEYS.items():
        value = getattr(request, name)
        if value == getattr(_DEFAULT, name):
            continue
        if name != "client_token" and name not in taken:
            raise ValueError(f"Field {key!r} is not taken by a {kind} request")
        body[key] = dict(value) if name == "status_details" else value
    return json.dumps(body).encode()


def client_token_of(payload: bytes) -> str | None:
    """The request's ``clientToken`` if it has a usable one (to echo even when the rest is refused)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    token = body.get("clientToken") if isinstance(body, dict) else None
    return token if isinstance(token, str) and len(token) <= CLIENT_TOKEN_MAX_LENGTH else None


def _integer(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(field, f"{value!r} is not an integer between {low} and {high}")
    return value


def _boolean(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise invalid(field, f"{value!r} is not true or false")
    return value


def _status_details(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise invalid("statusDetails", "must be an object of strings")
    for key, detail in value.items():
        if not 1 <= len(key) <= STATUS_DETAIL_KEY_MAX_LENGTH or _DETAIL_KEY.fullmatch(key) is None:
            raise invalid(
                "statusDetails",
                f"key {key!r} must be 1-{STATUS_DETAIL_KEY_MAX_LENGTH} letters, digits, ':', '_' or '-'",
            )
        if (
            not isinstance(detail, str)
            or not 1 <= len(detail) <= STATUS_DETAIL_VALUE_MAX_LENGTH
            or has_control_characters(detail)
        ):
            raise invalid(
                f"statusDetails.{key}",
                f"must be a string of 1-{STATUS_DETAIL_VALUE_MAX_LENGTH} characters without control characters",
            )
    return dict(value)


def _step_timeout(value: object, *, allow_stop: bool) -> int:
    if allow_stop and value == -1 and not isinstance(value, bool):
        return -1
    return _integer("stepTimeoutInMinutes", value, 1, STEP_TIMEOUT_MAX_MINUTES)


def _device_status(value: object) -> ExecutionStatus:
    if not isinstance(value, str) or value not in ExecutionStatus.__members__:
        raise invalid("status", f"{value!r} is not a job execution status")
    status = ExecutionStatus(value)
    if status not in DEVICE_STATUSES:
        raise invalid("status", f"a device may set IN_PROGRESS, SUCCEEDED, FAILED or REJECTED, not {value}")
    return status


def _request_field(kind: OperationKind, name: str, value: object) -> object:
    key = _KEYS[name]
    if name == "status":
        return _device_status(value)
    if name == "status_details":
        return _status_details(value)
    if name == "expected_version":
        return _integer(key, value, 0, _MAX_NUMBER)
    if name == "execution_number":
        return _integer(key, value, 1, _MAX_NUMBER)
    if name == "step_timeout_in_minutes":
        return _step_timeout(value, allow_stop=kind == "update")
    return _boolean(key, value)


def parse_request(kind: OperationKind, payload: bytes) -> Request:
    """The request ``payload`` holds for an operation of ``kind``; an empty payload is ``{}``.

    Raises:
        JobsRejection: InvalidJson (not a UTF-8 JSON object) or InvalidRequest (a field is wrong).
    """
    if payload.strip():
        try:
            body = json.loads(payload)
        except ValueError as exc:
            raise JobsRejection("InvalidJson", f"The payload is not UTF-8 JSON: {exc}") from None
    else:
        body = {}
    if not isinstance(body, dict):
        raise JobsRejection("InvalidJson", "The payload must be a JSON object")
    token = body.get("clientToken")
    if token is not None and (not isinstance(token, str) or len(token) > CLIENT_TOKEN_MAX_LENGTH):
        raise invalid("clientToken", f"must be a string of at most {CLIENT_TOKEN_MAX_LENGTH} characters")
    values: dict[str, Any] = {"client_token": token}
    for name in REQUEST_FIELDS[kind]:
        key = _KEYS[name]
        if name == "status" and key not in body:
            raise invalid(key, "is required")
        if name == "status" or body.get(key) is not None:
            values[name] = _request_field(kind, name, body[key])
    return Request(**values)
