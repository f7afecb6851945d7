"""The Jobs topics under ``$aws/things/<thing>/jobs``: what each names (a request, a reply to one or a
notification), how to build them and how to read any of them back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from edgewise.names import THING_NAME
from edgewise.protocol.jobs._rules import (
    NEXT,
    NotificationKind,
    OperationKind,
    Outcome,
    is_job_id,
    is_namespace,
)
from edgewise.protocol.jobs.errors import JobsRejection

#: Every jobs topic of every thing: what a single cloud process subscribes to, so that a request on a topic that
#: names no operation is answered ``InvalidTopic``, as AWS IoT does.
EVERY_THING_FILTER: Final = "$aws/things/+/jobs/#"
#: Every request topic of every thing, and no reply or notification: what each of several cloud processes
#: subscribes to, so that none receives what another publishes (see :func:`request_topic` for the shapes).
REQUEST_FILTERS: Final = tuple(
    f"$aws/things/+/jobs/{rest}"
    for rest in ("get", "start-next", "+/start-next", "+/get", "+/update", "+/+/get", "+/+/update")
)

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


@dataclass(frozen=True)
class Operation:
    """The request a topic names: the operation, the thing, the namespace (None: plain topics) and the job
    (describe and update only; ``+`` in a subscription filter).

    A namespaced start-next, ``J/namespace-<ns>/start-next``, is Edgewise's: AWS IoT documents no MQTT topic for
    it (its HTTPS StartNextPendingJobExecution takes a ``namespaceId``). GetPendingJobExecutions has no namespaced
    topic (``J/namespace-<ns>/get`` describes the job of that id)."""

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
    namespace = "" if operation.namespace_id is None else f"/{_NAMESPACE_PREFIX}{operation.namespace_id}"
    if operation.kind == "get_pending":
        return f"{prefix}/{operation.verb}"
    if operation.kind == "start_next":
        return f"{prefix}{namespace}/{operation.verb}"
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
    if len(rest) == 2 and rest[1] == "start-next" and rest[0].startswith(_NAMESPACE_PREFIX):
        namespace_id = rest[0].removeprefix(_NAMESPACE_PREFIX)
        if not is_namespace(namespace_id):
            raise JobsRejection("InvalidTopic", f"{rest[0]!r} in {topic!r} does not name a valid namespace")
        return Operation("start_next", thing, namespace_id)
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
