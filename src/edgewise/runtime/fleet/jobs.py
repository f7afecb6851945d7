"""The AWS IoT Jobs protocol over the cloud link, in the namespace Greengrass deployments use.

The device subscribes to ``J/notify-namespace-aws-gg-deployment`` (pending executions changed) and to the answers
of ``J/namespace-aws-gg-deployment/start-next`` (the next pending execution, with its document, moved to
IN_PROGRESS if it was QUEUED), ``J/<jobId>/namespace-aws-gg-deployment/get`` (describe; ``$next`` is the next
pending one, left as it is) and ``.../update`` (``J`` = ``$aws/things/<thing>/jobs``), with the topics and payloads
of :mod:`edgewise.protocol.jobs`. Anything malformed that arrives is logged and ignored, as a device SDK would.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgewise.protocol import jobs
from edgewise.protocol.jobs import NEXT, STATUS_DETAIL_VALUE_MAX_LENGTH, JobsPayloadError, JobsRejection

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

NAMESPACE = "aws-gg-deployment"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class JobExecution:
    """A job execution as the agent works on it: what a describe answer's ``execution`` says of it."""

    job_id: str
    status: str
    version: int
    execution_number: int | None
    document: Any  #: the job document, as sent (the agent checks it)

    @classmethod
    def of(cls, execution: jobs.Execution) -> JobExecution:
        """The agent's view of a described execution."""
        return cls(
            execution.job_id,
            execution.status,
            execution.version_number,
            execution.execution_number,
            execution.document,
        )

    @property
    def key(self) -> str:
        """Identifies one run of a job on this thing (a retried job gets a new execution number)."""
        return execution_key(self.job_id, self.execution_number)


def execution_key(job_id: str, execution_number: int | None) -> str:
    """``<jobId>#<executionNumber>``: one run of a job on this thing (the first when the number is not given)."""
    return f"{job_id}#{execution_number if execution_number is not None else 1}"


@dataclass(frozen=True)
class RejectedRequest:
    """A ``/rejected`` answer to one of the agent's requests."""

    job_id: (
        str  #: the job id of the request topic (``$next`` for a describe of the next one and for start-next)
    )
    operation: str  #: the request topic's last level: ``get``, ``update`` or ``start-next``
    code: str
    message: str
    client_token: str | None = None  #: the request's, echoed
    #: The execution's status in the cloud, which InvalidStateTransition and VersionMismatch rejections carry.
    execution_status: str | None = None


def parse_notify(payload: bytes) -> dict[str, list[str]] | None:
    """The executions of a JobExecutionsChanged event by pending status, as :func:`execution_key` names them
    (a job retried on this thing is listed again under a new execution number); None when malformed (logged)."""
    try:
        changed = jobs.parse_executions_changed(payload)
    except JobsPayloadError as exc:
        logger.warning("Ignoring a malformed jobs notification (%s): %.300r", exc, payload)
        return None
    return {
        status.value: [
            execution_key(summary.job_id, summary.execution_number) for summary in changed.jobs[status]
        ]
        for status in jobs.PENDING_STATUSES
        if status in changed.jobs
    }


def detail_value(text: str) -> str:
    """A ``statusDetails`` value: control characters replaced (the service refuses them), cut to 1,024."""
    cleaned = _CONTROL.sub(" ", text).strip()
    if len(cleaned) <= STATUS_DETAIL_VALUE_MAX_LENGTH:
        return cleaned
    return cleaned[: STATUS_DETAIL_VALUE_MAX_LENGTH - 3] + "..."


def deployment_status_details(
    detailed_status: str,
    *,
    cause: str | None = None,
    error_types: Iterable[str] = (),
    error_stack: Iterable[str] = (),
) -> dict[str, str]:
    """The ``statusDetails`` a Greengrass device reports for a finished deployment (the nucleus's keys).

    ``deployment-error-types`` and ``deployment-error-stack`` are JSON lists in a string, as each value must be
    a string; empty values are left out (the service requires 1-1,024 characters).
    """
    details = {"detailed-deployment-status": detailed_status}
    if cause:
        details["deployment-failure-cause"] = detail_value(cause)
    types = list(error_types)
    if types:
        details["deployment-error-types"] = detail_value(json.dumps(types))
    stack = list(error_stack)
    if stack:
        details["deployment-error-stack"] = detail_value(json.dumps(stack))
    return {key: value for key, value in details.items() if value}


class JobsClient:
    """Describes and updates this thing's deployment job executions; hands what arrives to callbacks.

    Every callback runs on the event loop and must not block.
    """

    def __init__(
        self,
        link: CloudLink,
        thing: str,
        *,
        on_notify: Callable[[dict[str, list[str]]], None],
        on_started: Callable[[JobExecution | None], None],
        on_execution: Callable[[str, JobExecution | None], None],
        on_rejected: Callable[[RejectedRequest], None],
        on_updated: Callable[[str, str], None] | None = None,
    ) -> None:
        self._link = link
        self._thing = thing
        self._on_updated = on_updated
        self._on_notify = on_notify
        self._on_started = on_started
        self._on_execution = on_execution
        self._on_rejected = on_rejected
        self._subscriptions: list[CloudSubscription] = []

    def _operation(self, kind: jobs.OperationKind, job_id: str | None = None) -> jobs.Operation:
        return jobs.Operation(kind, self._thing, NAMESPACE, job_id)

    async def start(self) -> None:
        """Subscribe to the namespace's notifications and answers (made again on every reconnect)."""
        filters = (
            jobs.notify_topic(self._thing, NAMESPACE),
            jobs.reply_filter(self._operation("start_next")),
            jobs.reply_filter(self._operation("describe", "+")),
            jobs.reply_filter(self._operation("update", "+")),
        )
        for topic_filter in filters:
            self._subscriptions.append(await self._link.subscribe(topic_filter, self._received, qos=1))

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()

    async def start_next(self) -> bool:
        """Ask for the next pending execution (with its document), which the cloud moves to IN_PROGRESS if it was
        QUEUED; the answer comes to ``on_started``. Only while connected: returns False offline, where the agent
        asks again on the next connection."""
        if not self._link.connected:
            return False
        request = jobs.Request(client_token=uuid.uuid4().hex)
        topic = jobs.request_topic(self._operation("start_next"))
        await self._link.publish(topic, jobs.request_payload("start_next", request), qos=1)
        return True

    async def describe(self, job_id: str = NEXT) -> bool:
        """Ask for an execution (with its document); the answer comes to ``on_execution``. Only while
        connected: returns False offline, where the agent asks again on the next connection."""
        if not self._link.connected:
            return False
        request = jobs.Request(client_token=uuid.uuid4().hex, include_job_document=True)
        topic = jobs.request_topic(self._operation("describe", job_id))
        await self._link.publish(topic, jobs.request_payload("describe", request), qos=1)
        return True

    async def update(
        self,
        execution: JobExecution,
        status: str,
        details: Mapping[str, str] | None = None,
    ) -> str:
        """Report a status; returns the request's client token, which the ``update/accepted`` answer echoes.
        Committed to the cloud link's spool before returning: it reaches the cloud after a disconnect or a
        restart too."""
        token = uuid.uuid4().hex
        request = jobs.Request(
            client_token=token,
            status=jobs.ExecutionStatus(status),
            status_details=dict(details) if details else None,
            execution_number=execution.execution_number,
        )
        topic = jobs.request_topic(self._operation("update", execution.job_id))
        await self._link.publish(topic, jobs.request_payload("update", request), qos=1)
        logger.info("Reported job %s %s %s", execution.job_id, status, dict(details or {}))
        return token

    def _received(self, message: CloudMessage) -> None:
        try:
            topic = jobs.parse_topic(message.topic)
        except JobsRejection:
            return
        if isinstance(topic, jobs.Notification):
            if topic.kind == "notify" and topic.namespace_id == NAMESPACE:
                pending = parse_notify(message.payload)
                if pending is not None:
                    self._on_notify(pending)
            return
        if not isinstance(topic, jobs.Reply) or topic.operation.namespace_id != NAMESPACE:
            return
        try:
            self._answered(topic.operation, topic.outcome, message.payload)
        except JobsPayloadError as exc:
            logger.warning("Ignoring a jobs answer on %s: %s", message.topic, exc)

    def _answered(self, operation: jobs.Operation, outcome: jobs.Outcome, payload: bytes) -> None:
        job_id = NEXT if operation.job_id is None else operation.job_id
        if outcome == "rejected":
            rejected = jobs.parse_rejected(payload)
            state = rejected.execution_state
            self._on_rejected(
                RejectedRequest(
                    job_id,
                    operation.verb,
                    rejected.code,
                    rejected.message,
                    client_token=rejected.client_token,
                    execution_status=None if state is None else state.status,
                )
            )
        elif operation.kind in ("describe", "start_next"):
            execution = _execution_of(payload)
            if operation.kind == "start_next":
                self._on_started(execution)
            else:
                self._on_execution(job_id, execution)
        elif self._on_updated is not None:
            updated = jobs.parse_update_reply(payload)
            if updated.client_token is not None:
                self._on_updated(job_id, updated.client_token)


def _execution_of(payload: bytes) -> JobExecution | None:
    """The execution a describe or start-next answer carries; None for none, or for a malformed one (logged:
    read as "no execution", the agent moves on instead of waiting for an answer).

    Raises:
        JobsPayloadError: the answer itself (not its execution) is malformed.
    """
    try:
        reply = jobs.parse_execution_reply(payload)
    except JobsPayloadError as exc:
        if exc.field is None or not exc.field.startswith("execution"):
            raise
        logger.warning("Ignoring a malformed job execution: %s", exc)
        return None
    return None if reply.execution is None else JobExecution.of(reply.execution)
