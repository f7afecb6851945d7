"""Reading what the cloud sends back on the Jobs topics: accepted answers, ``/rejected`` answers and
notifications, refusing a payload that does not parse with an error naming the field's path."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edgewise.protocol.jobs._replies import (
    Execution,
    ExecutionReply,
    ExecutionsChanged,
    ExecutionState,
    ExecutionSummary,
    NextExecutionChanged,
    PendingExecutions,
    Rejected,
    UpdateReply,
)
from edgewise.protocol.jobs._rules import is_job_id
from edgewise.protocol.jobs.errors import JobsPayloadError


def _object(value: object, field: str | None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise JobsPayloadError(field, "must be a JSON object")
    return value


def _load(payload: bytes) -> Mapping[str, Any]:
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise JobsPayloadError(None, f"The payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, Mapping):
        raise JobsPayloadError(None, "The payload must be a JSON object")
    return body


def _path(parent: str | None, key: str) -> str:
    return key if parent is None else f"{parent}.{key}"


def _required_text(body: Mapping[str, Any], key: str, parent: str | None) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise JobsPayloadError(_path(parent, key), f"{value!r} is not a string")
    return value


def _text(body: Mapping[str, Any], key: str, parent: str | None) -> str | None:
    return None if body.get(key) is None else _required_text(body, key, parent)


def _required_number(body: Mapping[str, Any], key: str, parent: str | None) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobsPayloadError(_path(parent, key), f"{value!r} is not an integer")
    return value


def _number(body: Mapping[str, Any], key: str, parent: str | None) -> int | None:
    return None if body.get(key) is None else _required_number(body, key, parent)


def _details(body: Mapping[str, Any], parent: str | None) -> dict[str, str] | None:
    value = body.get("statusDetails")
    if value is None:
        return None
    field = _path(parent, "statusDetails")
    details = _object(value, field)
    for key, detail in details.items():
        if not isinstance(detail, str):
            raise JobsPayloadError(f"{field}.{key}", f"{detail!r} is not a string")
    return dict(details)


def _job_id(body: Mapping[str, Any], parent: str | None) -> str:
    job_id = _required_text(body, "jobId", parent)
    if not is_job_id(job_id):
        raise JobsPayloadError(_path(parent, "jobId"), f"{job_id!r} is not a valid job id")
    return job_id


def _execution_state(value: object, field: str) -> ExecutionState:
    body = _object(value, field)
    status = _required_text(body, "status", field)
    return ExecutionState(status, _details(body, field), _number(body, "versionNumber", field))


def _summary(value: object, field: str) -> ExecutionSummary:
    body = _object(value, field)
    return ExecutionSummary(
        _job_id(body, field),
        queued_at=_number(body, "queuedAt", field),
        last_updated_at=_number(body, "lastUpdatedAt", field),
        version_number=_number(body, "versionNumber", field),
        execution_number=_number(body, "executionNumber", field),
        started_at=_number(body, "startedAt", field),
    )


def _summaries(value: object, field: str) -> tuple[ExecutionSummary, ...]:
    if not isinstance(value, list):
        raise JobsPayloadError(field, "must be a list")
    return tuple(_summary(entry, f"{field}[{index}]") for index, entry in enumerate(value))


def parse_execution(value: object, field: str = "execution") -> Execution:
    """An ``execution`` object; ``field`` is its path in error messages.

    Raises:
        JobsPayloadError: a field is missing or has the wrong type.
    """
    body = _object(value, field)
    status = _required_text(body, "status", field)
    version = _required_number(body, "versionNumber", field)
    return Execution(
        _job_id(body, field),
        status,
        version,
        execution_number=_number(body, "executionNumber", field),
        document=body.get("jobDocument"),
        thing_name=_text(body, "thingName", field),
        status_details=_details(body, field),
        queued_at=_number(body, "queuedAt", field),
        last_updated_at=_number(body, "lastUpdatedAt", field),
        started_at=_number(body, "startedAt", field),
    )


def parse_pending_executions(payload: bytes) -> PendingExecutions:
    """GetPendingJobExecutions' accepted answer.

    Raises:
        JobsPayloadError: not a JSON object, or a field is wrong.
    """
    body = _load(payload)
    return PendingExecutions(
        _summaries(body.get("inProgressJobs", []), "inProgressJobs"),
        _summaries(body.get("queuedJobs", []), "queuedJobs"),
        timestamp=_number(body, "timestamp", None),
        client_token=_text(body, "clientToken", None),
    )


def parse_execution_reply(payload: bytes) -> ExecutionReply:
    """DescribeJobExecution's or StartNextPendingJobExecution's accepted answer.

    Raises:
        JobsPayloadError: not a JSON object, or a field is wrong.
    """
    body = _load(payload)
    execution = body.get("execution")
    return ExecutionReply(
        None if execution is None else parse_execution(execution),
        timestamp=_number(body, "timestamp", None),
        client_token=_text(body, "clientToken", None),
    )


def parse_update_reply(payload: bytes) -> UpdateReply:
    """UpdateJobExecution's accepted answer.

    Raises:
        JobsPayloadError: not a JSON object, or a field is wrong.
    """
    body = _load(payload)
    state = body.get("executionState")
    return UpdateReply(
        None if state is None else _execution_state(state, "executionState"),
        body.get("jobDocument"),
        timestamp=_number(body, "timestamp", None),
        client_token=_text(body, "clientToken", None),
    )


def parse_rejected(payload: bytes) -> Rejected:
    """A ``/rejected`` answer.

    Raises:
        JobsPayloadError: not a JSON object, or a field is wrong.
    """
    body = _load(payload)
    code = _required_text(body, "code", None)
    state = body.get("executionState")
    return Rejected(
        code,
        _text(body, "message", None) or "",
        timestamp=_number(body, "timestamp", None),
        client_token=_text(body, "clientToken", None),
        execution_state=None if state is None else _execution_state(state, "executionState"),
    )


def parse_executions_changed(payload: bytes) -> ExecutionsChanged:
    """A JobExecutionsChanged event (``J/notify``).

    Raises:
        JobsPayloadError: not a JSON object, or a field is wrong.
    """
    body = _load(payload)
    timestamp = _required_number(body, "timestamp", None)
    lists = _object(body.get("jobs"), "jobs")
    jobs = {status: _summaries(entries, f"jobs.{status}") for status, entries in lists.items()}
    return ExecutionsChanged(timestamp, jobs)


def parse_next_execution_changed(payload: bytes) -> NextExecutionChanged:
    """A NextJobExecutionChanged event (``J/notify-next``).

    Raises:
        JobsPayloadError: not a JSON object, or a field is wrong.
    """
    body = _load(payload)
    timestamp = _required_number(body, "timestamp", None)
    execution = body.get("execution")
    return NextExecutionChanged(timestamp, None if execution is None else parse_execution(execution))
