"""What the cloud sends back on the Jobs topics: the execution, state and summary values, the accepted answers,
the ``/rejected`` answer and the two notifications, each with the JSON object it is sent as."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExecutionState:
    """A ``JobExecutionState``: where an execution stands."""

    status: str
    status_details: Mapping[str, str] | None = None
    version_number: int | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object."""
        body: dict[str, Any] = {"status": self.status}
        if self.status_details is not None:
            body["statusDetails"] = dict(self.status_details)
        if self.version_number is not None:
            body["versionNumber"] = self.version_number
        return body


@dataclass(frozen=True)
class ExecutionSummary:
    """A ``JobExecutionSummary``: an entry of the pending lists."""

    job_id: str
    queued_at: int | None = None
    last_updated_at: int | None = None
    version_number: int | None = None
    execution_number: int | None = None
    started_at: int | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object."""
        body: dict[str, Any] = {"jobId": self.job_id}
        for key, value in (
            ("queuedAt", self.queued_at),
            ("lastUpdatedAt", self.last_updated_at),
            ("versionNumber", self.version_number),
            ("executionNumber", self.execution_number),
            ("startedAt", self.started_at),
        ):
            if value is not None:
                body[key] = value
        return body


@dataclass(frozen=True)
class Execution:
    """A ``JobExecution``: one run of a job on a thing, as describe, start-next and notify-next carry it."""

    job_id: str
    status: str  #: as sent; a device compares it with :class:`ExecutionStatus` values
    version_number: int
    execution_number: int | None = None
    document: Any = None  #: the job document, as sent; None when left out
    thing_name: str | None = None
    status_details: Mapping[str, str] | None = None
    queued_at: int | None = None
    last_updated_at: int | None = None
    started_at: int | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object."""
        body: dict[str, Any] = {"jobId": self.job_id}
        if self.thing_name is not None:
            body["thingName"] = self.thing_name
        body["status"] = self.status
        for key, value in (
            ("statusDetails", None if self.status_details is None else dict(self.status_details)),
            ("queuedAt", self.queued_at),
            ("lastUpdatedAt", self.last_updated_at),
            ("versionNumber", self.version_number),
            ("executionNumber", self.execution_number),
            ("startedAt", self.started_at),
            ("jobDocument", self.document),
        ):
            if value is not None:
                body[key] = value
        return body


@dataclass(frozen=True)
class PendingExecutions:
    """GetPendingJobExecutions' answer."""

    in_progress: tuple[ExecutionSummary, ...] = ()
    queued: tuple[ExecutionSummary, ...] = ()
    timestamp: int | None = None
    client_token: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object (:func:`accepted_payload` adds ``timestamp`` and ``clientToken`` when unset)."""
        body = {
            "inProgressJobs": [summary.payload() for summary in self.in_progress],
            "queuedJobs": [summary.payload() for summary in self.queued],
        }
        return _enveloped(body, self.timestamp, self.client_token)


@dataclass(frozen=True)
class ExecutionReply:
    """DescribeJobExecution's and StartNextPendingJobExecution's answer: the execution, or None when there is
    no (next) pending one."""

    execution: Execution | None = None
    timestamp: int | None = None
    client_token: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object."""
        body = {} if self.execution is None else {"execution": self.execution.payload()}
        return _enveloped(body, self.timestamp, self.client_token)


@dataclass(frozen=True)
class UpdateReply:
    """UpdateJobExecution's answer: the state and the document, when the request asked for them."""

    execution_state: ExecutionState | None = None
    document: Any = None  #: None when left out
    timestamp: int | None = None
    client_token: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object."""
        body: dict[str, Any] = {}
        if self.execution_state is not None:
            body["executionState"] = self.execution_state.payload()
        if self.document is not None:
            body["jobDocument"] = self.document
        return _enveloped(body, self.timestamp, self.client_token)


@dataclass(frozen=True)
class Rejected:
    """A ``/rejected`` answer: AWS's error code, a message and, for InvalidStateTransition and VersionMismatch,
    the execution's state."""

    code: str
    message: str = ""
    timestamp: int | None = None
    client_token: str | None = None
    execution_state: ExecutionState | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object."""
        body = _enveloped({"code": self.code, "message": self.message}, self.timestamp, self.client_token)
        if self.execution_state is not None:
            body["executionState"] = self.execution_state.payload()
        return body


@dataclass(frozen=True)
class ExecutionsChanged:
    """JobExecutionsChanged (``J/notify``): a thing's pending executions by status."""

    timestamp: int
    jobs: Mapping[str, tuple[ExecutionSummary, ...]]

    def payload(self) -> dict[str, Any]:
        """The JSON object."""
        jobs = {
            status: [summary.payload() for summary in summaries] for status, summaries in self.jobs.items()
        }
        return {"timestamp": self.timestamp, "jobs": jobs}

    def job_ids(self, status: str) -> list[str]:
        """The job ids listed under ``status``."""
        return [summary.job_id for summary in self.jobs.get(status, ())]


@dataclass(frozen=True)
class NextExecutionChanged:
    """NextJobExecutionChanged (``J/notify-next``): the next pending execution, None when none is left."""

    timestamp: int
    execution: Execution | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object."""
        body: dict[str, Any] = {"timestamp": self.timestamp}
        if self.execution is not None:
            body["execution"] = self.execution.payload()
        return body


def _enveloped(body: dict[str, Any], timestamp: int | None, client_token: str | None) -> dict[str, Any]:
    if timestamp is not None:
        body["timestamp"] = timestamp
    if client_token is not None:
        body["clientToken"] = client_token
    return body


def accepted_payload(body: Mapping[str, Any], *, timestamp: int, client_token: str | None) -> dict[str, Any]:
    """An accepted answer's ``body`` with its ``timestamp`` and the request's ``clientToken`` echoed."""
    return _enveloped(dict(body), timestamp, client_token)


def with_document(
    body: Mapping[str, Any], job_id: str | None, transform: Callable[[Any, str], Any]
) -> dict[str, Any]:
    """``body`` (an answer or notification) with its job document replaced by ``transform(document, job id)``:
    the execution's, or an update answer's top-level one when ``job_id`` (the request's) is given."""
    execution = body.get("execution")
    if isinstance(execution, dict) and "jobDocument" in execution:
        document = transform(execution["jobDocument"], execution["jobId"])
        return {**body, "execution": {**execution, "jobDocument": document}}
    if "jobDocument" in body and job_id is not None:
        return {**body, "jobDocument": transform(body["jobDocument"], job_id)}
    return dict(body)
