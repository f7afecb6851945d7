"""The AWS IoT Jobs MQTT protocol's shapes: which operation a topic names, what a request says, and the
payloads of replies and notifications (``J`` = ``$aws/things/<thing>/jobs``).

Pure functions and values, no store: :mod:`edgewise.cloud.jobs.executions` does the work and
:mod:`edgewise.cloud.jobs.worker` carries the messages. A bad request raises :class:`JobsRejection`, whose
payload is AWS's ``/rejected`` body. Unknown request fields are ignored (as AWS IoT does); known ones are
checked for type and range, and the message names the field. Timestamps are epoch seconds.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from edgewise.cloud.jobs import rules
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobExecution

OperationKind = Literal["get_pending", "start_next", "describe", "update"]
NEXT = "$next"
DEVICE_STATUSES = frozenset(
    {ExecutionStatus.IN_PROGRESS, ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.REJECTED}
)
_THING = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
_DETAIL_KEY = re.compile(rules.STATUS_DETAIL_KEY_PATTERN)
_NAMESPACE_PREFIX = "namespace-"


class JobsRejection(Exception):
    """A request answered on ``/rejected``: AWS's error ``code``, a message and, for InvalidStateTransition and
    VersionMismatch, the execution's state."""

    def __init__(self, code: str, message: str, *, execution_state: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.execution_state = execution_state

    def payload(self, *, client_token: str | None, timestamp: int) -> dict[str, Any]:
        """The ``/rejected`` body."""
        body: dict[str, Any] = {"code": self.code, "message": str(self), "timestamp": timestamp}
        if client_token is not None:
            body["clientToken"] = client_token
        if self.execution_state is not None:
            body["executionState"] = self.execution_state
        return body


def invalid(field: str, problem: str) -> JobsRejection:
    """An InvalidRequest naming ``field``."""
    return JobsRejection("InvalidRequest", f"Field {field!r} is invalid: {problem}")


@dataclass(frozen=True)
class Operation:
    """The request a topic names: the operation, the thing, the namespace (None: plain topics) and the job."""

    kind: OperationKind
    thing_name: str
    namespace_id: str | None = None
    job_id: str | None = None


def parse_topic(topic: str) -> Operation | None:
    """The operation ``topic`` asks for; None for topics the service itself publishes (replies, notifications).

    Raises:
        JobsRejection: InvalidTopic, for a topic under ``$aws/things/<thing>/jobs/`` that maps to no operation.
    """
    levels = topic.split("/")
    if len(levels) < 4 or levels[:2] != ["$aws", "things"] or levels[3] != "jobs":
        raise JobsRejection("InvalidTopic", f"{topic!r} is not a jobs topic")
    if levels[-1] in ("accepted", "rejected") or (len(levels) == 5 and levels[4].startswith("notify")):
        return None
    thing, rest = levels[2], levels[4:]
    if _THING.fullmatch(thing) is None:
        raise JobsRejection("InvalidTopic", f"{thing!r} in {topic!r} is not a valid thing name")
    if rest == ["get"]:
        return Operation("get_pending", thing)
    if rest == ["start-next"]:
        return Operation("start_next", thing)
    namespace: str | None = None
    if len(rest) == 3 and rest[1].startswith(_NAMESPACE_PREFIX):
        namespace = rest[1].removeprefix(_NAMESPACE_PREFIX)
        if not rules.is_namespace(namespace):
            raise JobsRejection("InvalidTopic", f"{rest[1]!r} in {topic!r} does not name a valid namespace")
        rest = [rest[0], rest[2]]
    if len(rest) == 2 and rest[1] in ("get", "update"):
        job_id = rest[0]
        kind: OperationKind = "describe" if rest[1] == "get" else "update"
        if not (rules.is_job_id(job_id) or (job_id == NEXT and kind == "describe")):
            raise JobsRejection(
                "InvalidTopic" if kind == "describe" else "InvalidRequest",
                f"{job_id!r} in {topic!r} is not a valid job id"
                + (" ($next is only for describing)" if job_id == NEXT else ""),
            )
        return Operation(kind, thing, namespace, job_id)
    raise JobsRejection("InvalidTopic", f"{topic!r} maps to no jobs operation")


@dataclass(frozen=True)
class Request:
    """A request's fields; those an operation does not take keep their defaults."""

    client_token: str | None = None
    status: ExecutionStatus | None = None
    status_details: dict[str, str] | None = None
    expected_version: int | None = None
    execution_number: int | None = None
    include_job_execution_state: bool = False
    #: Describe includes the document unless told otherwise; update only when asked.
    include_job_document: bool | None = None
    #: Minutes; -1 stops the step timer (update only).
    step_timeout_in_minutes: int | None = None


def client_token_of(payload: bytes) -> str | None:
    """The request's ``clientToken`` if it has a usable one (to echo even when the rest is refused)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    token = body.get("clientToken") if isinstance(body, dict) else None
    return token if isinstance(token, str) and len(token) <= rules.CLIENT_TOKEN_MAX_LENGTH else None


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
        if not 1 <= len(key) <= rules.STATUS_DETAIL_KEY_MAX_LENGTH or _DETAIL_KEY.fullmatch(key) is None:
            raise invalid(
                "statusDetails",
                f"key {key!r} must be 1-{rules.STATUS_DETAIL_KEY_MAX_LENGTH} letters, digits, ':', '_' or '-'",
            )
        if (
            not isinstance(detail, str)
            or not 1 <= len(detail) <= rules.STATUS_DETAIL_VALUE_MAX_LENGTH
            or rules.has_control_characters(detail)
        ):
            raise invalid(
                f"statusDetails.{key}",
                f"must be a string of 1-{rules.STATUS_DETAIL_VALUE_MAX_LENGTH} characters without control"
                " characters",
            )
    return dict(value)


def _step_timeout(value: object, *, allow_stop: bool) -> int:
    if allow_stop and value == -1 and not isinstance(value, bool):
        return -1
    return _integer("stepTimeoutInMinutes", value, 1, rules.STEP_TIMEOUT_MAX_MINUTES)


def _device_status(value: object) -> ExecutionStatus:
    if not isinstance(value, str) or value not in ExecutionStatus.__members__:
        raise invalid("status", f"{value!r} is not a job execution status")
    status = ExecutionStatus(value)
    if status not in DEVICE_STATUSES:
        raise invalid("status", f"a device may set IN_PROGRESS, SUCCEEDED, FAILED or REJECTED, not {value}")
    return status


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
    if token is not None and (not isinstance(token, str) or len(token) > rules.CLIENT_TOKEN_MAX_LENGTH):
        raise invalid(
            "clientToken", f"must be a string of at most {rules.CLIENT_TOKEN_MAX_LENGTH} characters"
        )
    values: dict[str, Any] = {"client_token": token}
    if kind == "start_next":
        if body.get("statusDetails") is not None:
            values["status_details"] = _status_details(body["statusDetails"])
        if body.get("stepTimeoutInMinutes") is not None:
            values["step_timeout_in_minutes"] = _step_timeout(body["stepTimeoutInMinutes"], allow_stop=False)
    elif kind == "describe":
        if body.get("executionNumber") is not None:
            values["execution_number"] = _integer("executionNumber", body["executionNumber"], 1, 2**63 - 1)
        if body.get("includeJobDocument") is not None:
            values["include_job_document"] = _boolean("includeJobDocument", body["includeJobDocument"])
    elif kind == "update":
        if "status" not in body:
            raise invalid("status", "is required")
        values["status"] = _device_status(body["status"])
        if body.get("statusDetails") is not None:
            values["status_details"] = _status_details(body["statusDetails"])
        for field, name in (("expectedVersion", "expected_version"), ("executionNumber", "execution_number")):
            if body.get(field) is not None:
                values[name] = _integer(field, body[field], 1 if field == "executionNumber" else 0, 2**63 - 1)
        for field, name in (
            ("includeJobExecutionState", "include_job_execution_state"),
            ("includeJobDocument", "include_job_document"),
        ):
            if body.get(field) is not None:
                values[name] = _boolean(field, body[field])
        if body.get("stepTimeoutInMinutes") is not None:
            values["step_timeout_in_minutes"] = _step_timeout(body["stepTimeoutInMinutes"], allow_stop=True)
    return Request(**values)


def timestamp(moment: datetime.datetime) -> int:
    """Epoch seconds, what every awsiotsdk parser expects."""
    return int(moment.timestamp())


def execution_state(execution: JobExecution) -> dict[str, Any]:
    """A ``JobExecutionState``."""
    return {
        "status": execution.status.value,
        "statusDetails": dict(execution.status_details),
        "versionNumber": execution.version_number,
    }


def execution_summary(execution: JobExecution, job: Job) -> dict[str, Any]:
    """A ``JobExecutionSummary`` (the lists of GetPendingJobExecutions and ``J/notify``)."""
    summary: dict[str, Any] = {
        "jobId": job.job_id,
        "queuedAt": timestamp(execution.queued_at),
        "lastUpdatedAt": timestamp(execution.last_updated_at),
        "versionNumber": execution.version_number,
        "executionNumber": execution.execution_number,
    }
    if execution.started_at is not None:
        summary["startedAt"] = timestamp(execution.started_at)
    return summary


def execution_data(execution: JobExecution, job: Job, *, include_document: bool = True) -> dict[str, Any]:
    """A ``JobExecution``, with the job document unless ``include_document`` is False."""
    data: dict[str, Any] = {
        "jobId": job.job_id,
        "thingName": execution.thing_name,
        "status": execution.status.value,
        "statusDetails": dict(execution.status_details),
        "queuedAt": timestamp(execution.queued_at),
        "lastUpdatedAt": timestamp(execution.last_updated_at),
        "versionNumber": execution.version_number,
        "executionNumber": execution.execution_number,
    }
    if execution.started_at is not None:
        data["startedAt"] = timestamp(execution.started_at)
    if include_document:
        data["jobDocument"] = job.document
    return data


def pending_lists(pending: list[tuple[JobExecution, Job]], *, limit: int | None = None) -> dict[str, Any]:
    """``{"IN_PROGRESS": [...], "QUEUED": [...]}`` of ``pending`` (already in order), empty lists left out."""
    lists: dict[str, list[dict[str, Any]]] = {}
    for execution, job in pending[:limit]:
        lists.setdefault(execution.status.value, []).append(execution_summary(execution, job))
    return lists


def notify_topic(thing_name: str, namespace_id: str | None) -> str:
    """Where a thing's JobExecutionsChanged events go."""
    suffix = "notify" if namespace_id is None else f"notify-namespace-{namespace_id}"
    return f"$aws/things/{thing_name}/jobs/{suffix}"


def notify_next_topic(thing_name: str) -> str:
    """Where a thing's NextJobExecutionChanged events go (plain jobs only)."""
    return f"$aws/things/{thing_name}/jobs/notify-next"


def with_token(body: Mapping[str, Any], client_token: str | None) -> dict[str, Any]:
    """``body`` with ``clientToken`` echoed when the request had one."""
    result = dict(body)
    if client_token is not None:
        result["clientToken"] = client_token
    return result
