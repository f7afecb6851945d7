"""AWS IoT Jobs over MQTT: the topics under ``$aws/things/<thing>/jobs`` (``J``), the requests a device sends and
the replies and notifications the cloud sends back, as AWS IoT and the AWS IoT Device SDKs speak them.

Requests (:class:`Request`, built by :func:`request_payload`, read by :func:`parse_request`): ``J/get``
(GetPendingJobExecutions), ``J/start-next`` (StartNextPendingJobExecution), ``J/<jobId>/get``
(DescribeJobExecution; ``$next`` is the next pending execution) and ``J/<jobId>/update``
(UpdateJobExecution); describe and update also as ``J/<jobId>/namespace-<ns>/get|update`` for a namespaced job.
Each is answered on its topic plus ``/accepted`` (:class:`PendingExecutions`, :class:`ExecutionReply`,
:class:`UpdateReply`, each with :func:`accepted_payload`'s ``timestamp`` and ``clientToken``) or ``/rejected``
(:class:`Rejected`). Notifications: ``J/notify`` (``J/notify-namespace-<ns>``) carries
:class:`ExecutionsChanged`, ``J/notify-next`` carries :class:`NextExecutionChanged`. :func:`request_topic`,
:func:`reply_topic`, :func:`notify_topic` and :func:`notify_next_topic` build the topics; :func:`parse_topic`
reads any of them.

A bad request raises :class:`JobsRejection`, whose code and message are the ``/rejected`` answer's: unknown
fields are ignored (as AWS IoT does), known ones are checked for type and range, and the message names the field.
A reply or notification that does not parse raises :class:`JobsPayloadError` naming the field's path. Timestamps
are epoch seconds.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgewise.errors import EdgewiseError
from edgewise.names import THING_NAME

#: The job id that describes the next pending execution.
NEXT: Final = "$next"
#: What the cloud subscribes to: every jobs topic of every thing.
EVERY_THING_FILTER: Final = "$aws/things/+/jobs/#"

JOB_ID_PATTERN: Final = r"^[a-zA-Z0-9_-]+$"
JOB_ID_MAX_LENGTH: Final = 64
NAMESPACE_PATTERN: Final = r"^[a-zA-Z0-9_-]+$"
NAMESPACE_MAX_LENGTH: Final = 64
STATUS_DETAIL_KEY_PATTERN: Final = r"^[a-zA-Z0-9:_-]+$"
STATUS_DETAIL_KEY_MAX_LENGTH: Final = 128
STATUS_DETAIL_VALUE_MAX_LENGTH: Final = 1024
CLIENT_TOKEN_MAX_LENGTH: Final = 64
STEP_TIMEOUT_MAX_MINUTES: Final = 10080
_MAX_NUMBER = 2**63 - 1

OperationKind = Literal["get_pending", "start_next", "describe", "update"]
Outcome = Literal["accepted", "rejected"]
NotificationKind = Literal["notify", "notify_next"]

_JOB_ID = re.compile(JOB_ID_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_DETAIL_KEY = re.compile(STATUS_DETAIL_KEY_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMESPACE_PREFIX = "namespace-"
_NOTIFY = "notify"
_NOTIFY_NEXT = "notify-next"
_NOTIFY_NAMESPACE_PREFIX = "notify-namespace-"
_VERBS: Final[Mapping[OperationKind, str]] = {
    "get_pending": "get",
    "start_next": "start-next",
    "describe": "get",
    "update": "update",
}


class ExecutionStatus(enum.StrEnum):
    """The status of one job execution (AWS IoT ``JobExecutionStatus``)."""

    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"
    REMOVED = "REMOVED"
    CANCELED = "CANCELED"

    @property
    def is_pending(self) -> bool:
        """QUEUED or IN_PROGRESS: the device still has work to do."""
        return self in (ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS)

    @property
    def is_terminal(self) -> bool:
        """No transition leaves this status."""
        return not self.is_pending

    @property
    def was_executed(self) -> bool:
        """The device ran the execution to an end (what abort criteria count)."""
        return self in (
            ExecutionStatus.SUCCEEDED,
            ExecutionStatus.FAILED,
            ExecutionStatus.TIMED_OUT,
            ExecutionStatus.REJECTED,
        )


#: The statuses of pending executions, in the order a notification's lists are read.
PENDING_STATUSES: Final = (ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS)
#: The statuses a device may report.
DEVICE_STATUSES: Final = frozenset(
    {ExecutionStatus.IN_PROGRESS, ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.REJECTED}
)


def is_job_id(text: str) -> bool:
    """Whether ``text`` is a valid job id."""
    return 1 <= len(text) <= JOB_ID_MAX_LENGTH and _JOB_ID.fullmatch(text) is not None


def is_namespace(text: str) -> bool:
    """Whether ``text`` is a valid namespace id."""
    return 1 <= len(text) <= NAMESPACE_MAX_LENGTH and _NAMESPACE.fullmatch(text) is not None


def has_control_characters(text: str) -> bool:
    """Whether ``text`` contains an ASCII control character."""
    return _CONTROL.search(text) is not None


class JobsRejection(EdgewiseError):
    """A request answered on ``/rejected``: AWS's error ``code``, a message and, for InvalidStateTransition and
    VersionMismatch, the execution's state (an :class:`ExecutionState`'s JSON object)."""

    def __init__(self, code: str, message: str, *, execution_state: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.execution_state = execution_state

    def payload(self, *, client_token: str | None, timestamp: int) -> dict[str, Any]:
        """The ``/rejected`` body."""
        body = Rejected(self.code, str(self), timestamp=timestamp, client_token=client_token).payload()
        if self.execution_state is not None:
            body["executionState"] = dict(self.execution_state)
        return body


def invalid(field: str, problem: str) -> JobsRejection:
    """An InvalidRequest naming ``field``."""
    return JobsRejection("InvalidRequest", f"Field {field!r} is invalid: {problem}")


class JobsPayloadError(EdgewiseError):
    """A reply or notification that does not parse; the message names the field's path and the problem."""

    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(problem if field is None else f"Field {field!r} is invalid: {problem}")
        self.field = field


# -- topics -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """The request a topic names: the operation, the thing, the namespace (None: plain topics) and the job
    (describe and update only; ``+`` in a subscription filter)."""

    kind: OperationKind
    thing_name: str
    namespace_id: str | None = None
    job_id: str | None = None

    @property
    def verb(self) -> str:
        """The request topic's last level."""
        return _VERBS[self.kind]


@dataclass(frozen=True)
class Reply:
    """A reply topic: the request it answers and whether it was accepted."""

    operation: Operation
    outcome: Outcome


@dataclass(frozen=True)
class Notification:
    """A notification topic: ``notify`` (JobExecutionsChanged, per namespace) or ``notify_next``
    (NextExecutionChanged, plain jobs only)."""

    kind: NotificationKind
    thing_name: str
    namespace_id: str | None = None


def _prefix(thing_name: str) -> str:
    return f"$aws/things/{thing_name}/jobs"


def request_topic(operation: Operation) -> str:
    """Where a device sends ``operation``."""
    prefix = _prefix(operation.thing_name)
    if operation.kind in ("get_pending", "start_next"):
        return f"{prefix}/{operation.verb}"
    namespace = "" if operation.namespace_id is None else f"/{_NAMESPACE_PREFIX}{operation.namespace_id}"
    return f"{prefix}/{operation.job_id}{namespace}/{operation.verb}"


def reply_topic(request: str, outcome: Outcome) -> str:
    """Where the cloud answers a request that came on the topic ``request`` (refused ones too)."""
    return f"{request}/{outcome}"


def reply_filter(operation: Operation) -> str:
    """The subscription filter for both answers to ``operation``."""
    return f"{request_topic(operation)}/+"


def notify_topic(thing_name: str, namespace_id: str | None) -> str:
    """Where a thing's JobExecutionsChanged events go."""
    suffix = _NOTIFY if namespace_id is None else f"{_NOTIFY_NAMESPACE_PREFIX}{namespace_id}"
    return f"{_prefix(thing_name)}/{suffix}"


def notify_next_topic(thing_name: str) -> str:
    """Where a thing's NextJobExecutionChanged events go (plain jobs only)."""
    return f"{_prefix(thing_name)}/{_NOTIFY_NEXT}"


def _levels(topic: str) -> list[str]:
    levels = topic.split("/")
    if len(levels) < 4 or levels[:2] != ["$aws", "things"] or levels[3] != "jobs":
        raise JobsRejection("InvalidTopic", f"{topic!r} is not a jobs topic")
    return levels


def _is_published_by_service(levels: list[str]) -> bool:
    return levels[-1] in ("accepted", "rejected") or (len(levels) == 5 and levels[4].startswith(_NOTIFY))


def _thing(levels: list[str], topic: str) -> str:
    if THING_NAME.fullmatch(levels[2]) is None:
        raise JobsRejection("InvalidTopic", f"{levels[2]!r} in {topic!r} is not a valid thing name")
    return levels[2]


def _operation(levels: list[str], topic: str) -> Operation:
    thing, rest = _thing(levels, topic), levels[4:]
    if rest == ["get"]:
        return Operation("get_pending", thing)
    if rest == ["start-next"]:
        return Operation("start_next", thing)
    namespace: str | None = None
    if len(rest) == 3 and rest[1].startswith(_NAMESPACE_PREFIX):
        namespace = rest[1].removeprefix(_NAMESPACE_PREFIX)
        if not is_namespace(namespace):
            raise JobsRejection("InvalidTopic", f"{rest[1]!r} in {topic!r} does not name a valid namespace")
        rest = [rest[0], rest[2]]
    if len(rest) == 2 and rest[1] in ("get", "update"):
        job_id = rest[0]
        kind: OperationKind = "describe" if rest[1] == "get" else "update"
        if not (is_job_id(job_id) or (job_id == NEXT and kind == "describe")):
            raise JobsRejection(
                "InvalidTopic" if kind == "describe" else "InvalidRequest",
                f"{job_id!r} in {topic!r} is not a valid job id"
                + (" ($next is only for describing)" if job_id == NEXT else ""),
            )
        return Operation(kind, thing, namespace, job_id)
    raise JobsRejection("InvalidTopic", f"{topic!r} maps to no jobs operation")


def _notification(levels: list[str], topic: str) -> Notification:
    thing = _thing(levels, topic)
    suffix = levels[4] if len(levels) == 5 else ""
    if suffix == _NOTIFY:
        return Notification("notify", thing)
    if suffix == _NOTIFY_NEXT:
        return Notification("notify_next", thing)
    if suffix.startswith(_NOTIFY_NAMESPACE_PREFIX):
        namespace = suffix.removeprefix(_NOTIFY_NAMESPACE_PREFIX)
        if is_namespace(namespace):
            return Notification("notify", thing, namespace)
    raise JobsRejection("InvalidTopic", f"{topic!r} is no jobs notification")


def parse_request_topic(topic: str) -> Operation | None:
    """The operation ``topic`` asks for; None for the topics the service itself publishes (replies,
    notifications), which it does not check further.

    Raises:
        JobsRejection: InvalidTopic, for a topic under ``$aws/things/<thing>/jobs/`` that maps to no operation
            (InvalidRequest for an update of ``$next``).
    """
    levels = _levels(topic)
    if _is_published_by_service(levels):
        return None
    return _operation(levels, topic)


def parse_topic(topic: str) -> Operation | Reply | Notification:
    """What any jobs topic is: a request, a reply to one or a notification.

    Raises:
        JobsRejection: as :func:`parse_request_topic`, and InvalidTopic for a reply or notification topic that
            names no request or notification.
    """
    levels = _levels(topic)
    if levels[-1] == "accepted" or levels[-1] == "rejected":
        outcome: Outcome = "accepted" if levels[-1] == "accepted" else "rejected"
        return Reply(_operation(levels[:-1], topic), outcome)
    if _is_published_by_service(levels):
        return _notification(levels, topic)
    return _operation(levels, topic)


# -- requests ---------------------------------------------------------------------------------------------


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


# -- replies and notifications ----------------------------------------------------------------------------


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


# -- reading replies and notifications --------------------------------------------------------------------


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
