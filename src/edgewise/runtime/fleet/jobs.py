"""The AWS IoT Jobs protocol over the cloud link, in the namespace Greengrass deployments use.

Topics (``J`` = ``$aws/things/<thing>/jobs``, reference aws-iot.md §2.7): ``J/notify-namespace-aws-gg-deployment``
(pending executions changed), ``J/<jobId>/namespace-aws-gg-deployment/get`` (describe; ``$next`` is the next
pending one) and ``.../update``, each answered on ``/accepted`` or ``/rejected``. Payloads are those of §2.3;
anything malformed that arrives is logged and ignored, as a device SDK would.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

NAMESPACE = "aws-gg-deployment"
NEXT = "$next"
PENDING = ("QUEUED", "IN_PROGRESS")
#: Statuses after which an execution never changes again (§2.4).
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "REMOVED", "CANCELED")
#: Rejection codes that mean the execution is gone or over: nothing more will happen to it.
GONE_CODES = ("ResourceNotFound", "TerminalStateReached", "InvalidStateTransition")
MAX_DETAIL_LENGTH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass(frozen=True)
class JobExecution:
    """A job execution as ``get/accepted`` describes it (``execution``)."""

    job_id: str
    status: str
    version: int
    execution_number: int | None
    document: Any  #: the job document, as sent (the agent checks it)

    @property
    def key(self) -> str:
        """Identifies one run of a job on this thing (a retried job gets a new execution number)."""
        return f"{self.job_id}#{self.execution_number if self.execution_number is not None else 1}"


@dataclass(frozen=True)
class JobsRejection:
    """A ``/rejected`` answer."""

    job_id: str  #: the job id of the request topic (``$next`` for a describe of the next one)
    operation: str  #: ``get`` or ``update``
    code: str
    message: str
    client_token: str | None = None  #: the request's, echoed
    #: The execution's status in the cloud, which InvalidStateTransition and VersionMismatch rejections carry.
    execution_status: str | None = None


def parse_execution(value: object) -> JobExecution | None:
    """An ``execution`` object of a describe answer, or None when it is absent or malformed (logged)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        logger.warning("Ignoring a job execution that is not an object: %.200r", value)
        return None
    job_id, status, version = value.get("jobId"), value.get("status"), value.get("versionNumber")
    number = value.get("executionNumber")
    if (
        not isinstance(job_id, str)
        or not _JOB_ID.fullmatch(job_id)
        or not isinstance(status, str)
        or isinstance(version, bool)
        or not isinstance(version, int)
        or (number is not None and (isinstance(number, bool) or not isinstance(number, int)))
    ):
        logger.warning("Ignoring a malformed job execution: %.300r", value)
        return None
    return JobExecution(job_id, status, version, number, value.get("jobDocument"))


def parse_notify(payload: bytes) -> dict[str, list[str]] | None:
    """The job ids of a JobExecutionsChanged event by status; None when malformed (logged)."""
    try:
        body = json.loads(payload)
        jobs = body["jobs"]
        pending = {
            status: [summary["jobId"] for summary in jobs.get(status, [])]
            for status in PENDING
            if status in jobs
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        logger.warning("Ignoring a malformed jobs notification: %.300r", payload)
        return None
    if not all(isinstance(job_id, str) for ids in pending.values() for job_id in ids):
        logger.warning("Ignoring a jobs notification with bad job ids: %.300r", payload)
        return None
    return pending


def detail_value(text: str) -> str:
    """A ``statusDetails`` value: control characters replaced (the service refuses them), cut to 1,024."""
    cleaned = _CONTROL.sub(" ", text).strip()
    if len(cleaned) <= MAX_DETAIL_LENGTH:
        return cleaned
    return cleaned[: MAX_DETAIL_LENGTH - 3] + "..."


def deployment_status_details(
    detailed_status: str,
    *,
    cause: str | None = None,
    error_types: Iterable[str] = (),
    error_stack: Iterable[str] = (),
) -> dict[str, str]:
    """The ``statusDetails`` a Greengrass device reports for a finished deployment (reference §3.7).

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
        on_execution: Callable[[str, JobExecution | None], None],
        on_rejected: Callable[[JobsRejection], None],
        on_updated: Callable[[str, str], None] | None = None,
    ) -> None:
        self._link = link
        self._on_updated = on_updated
        self._prefix = f"$aws/things/{thing}/jobs"
        self._on_notify = on_notify
        self._on_execution = on_execution
        self._on_rejected = on_rejected
        self._subscriptions: list[CloudSubscription] = []

    def topic(self, job_id: str, operation: str) -> str:
        return f"{self._prefix}/{job_id}/namespace-{NAMESPACE}/{operation}"

    async def start(self) -> None:
        """Subscribe to the namespace's notifications and answers (made again on every reconnect)."""
        filters = (
            f"{self._prefix}/notify-namespace-{NAMESPACE}",
            self.topic("+", "get/+"),
            self.topic("+", "update/+"),
        )
        for topic_filter in filters:
            self._subscriptions.append(await self._link.subscribe(topic_filter, self._received, qos=1))

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()

    async def describe(self, job_id: str = NEXT) -> bool:
        """Ask for an execution (with its document); the answer comes to ``on_execution``. Only while
        connected: returns False offline, where the agent asks again on the next connection."""
        if not self._link.connected:
            return False
        request = {"clientToken": uuid.uuid4().hex, "includeJobDocument": True}
        await self._link.publish(self.topic(job_id, "get"), json.dumps(request).encode(), qos=1)
        return True

    async def update(
        self,
        execution: JobExecution,
        status: str,
        details: Mapping[str, str] | None = None,
        *,
        expected_version: int | None = None,
    ) -> str:
        """Report a status; returns the request's client token, which the ``update/accepted`` answer echoes.
        Committed to the cloud link's spool before returning: it reaches the cloud after a disconnect or a
        restart too."""
        token = uuid.uuid4().hex
        request: dict[str, Any] = {"status": status, "clientToken": token}
        if details:
            request["statusDetails"] = dict(details)
        if expected_version is not None:
            request["expectedVersion"] = expected_version
        if execution.execution_number is not None:
            request["executionNumber"] = execution.execution_number
        await self._link.publish(self.topic(execution.job_id, "update"), json.dumps(request).encode(), qos=1)
        logger.info("Reported job %s %s %s", execution.job_id, status, dict(details or {}))
        return token

    def _received(self, message: CloudMessage) -> None:
        parts = message.topic[len(self._prefix) + 1 :].split("/")
        if parts == [f"notify-namespace-{NAMESPACE}"]:
            pending = parse_notify(message.payload)
            if pending is not None:
                self._on_notify(pending)
            return
        if len(parts) != 4 or parts[1] != f"namespace-{NAMESPACE}":
            return
        job_id, _, operation, outcome = parts
        try:
            body = json.loads(message.payload)
        except ValueError:
            body = None
        if not isinstance(body, Mapping):
            logger.warning("Ignoring a jobs answer on %s that is not a JSON object", message.topic)
            return
        if outcome == "rejected":
            code, text, token = body.get("code"), body.get("message"), body.get("clientToken")
            state = body.get("executionState")
            status = state.get("status") if isinstance(state, Mapping) else None
            self._on_rejected(
                JobsRejection(
                    job_id,
                    operation,
                    str(code),
                    str(text or ""),
                    client_token=token if isinstance(token, str) else None,
                    execution_status=status if isinstance(status, str) else None,
                )
            )
        elif outcome == "accepted" and operation == "get":
            self._on_execution(job_id, parse_execution(body.get("execution")))
        elif outcome == "accepted" and operation == "update" and self._on_updated is not None:
            token = body.get("clientToken")
            if isinstance(token, str):
                self._on_updated(job_id, token)
