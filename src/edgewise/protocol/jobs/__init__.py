"""AWS IoT Jobs over MQTT: the topics under ``$aws/things/<thing>/jobs`` (``J``), the requests a device sends and
the replies and notifications the cloud sends back, as AWS IoT and the AWS IoT Device SDKs speak them.

Requests (:class:`Request`, built by :func:`request_payload`, read by :func:`parse_request`): ``J/get``
(GetPendingJobExecutions), ``J/start-next`` (StartNextPendingJobExecution), ``J/<jobId>/get``
(DescribeJobExecution; ``$next`` is the next pending execution) and ``J/<jobId>/update``
(UpdateJobExecution); describe and update also as ``J/<jobId>/namespace-<ns>/get|update`` for a namespaced job,
start-next as ``J/namespace-<ns>/start-next`` (Edgewise's own topic).
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

from edgewise.protocol.jobs._parse import (
    parse_execution,
    parse_execution_reply,
    parse_executions_changed,
    parse_next_execution_changed,
    parse_pending_executions,
    parse_rejected,
    parse_update_reply,
)
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
    accepted_payload,
    with_document,
)
from edgewise.protocol.jobs._requests import (
    REQUEST_FIELDS,
    Request,
    client_token_of,
    parse_request,
    request_payload,
)
from edgewise.protocol.jobs._rules import (
    CLIENT_TOKEN_MAX_LENGTH,
    DEVICE_STATUSES,
    JOB_ID_MAX_LENGTH,
    JOB_ID_PATTERN,
    NAMESPACE_MAX_LENGTH,
    NAMESPACE_PATTERN,
    NEXT,
    PENDING_STATUSES,
    STATUS_DETAIL_KEY_MAX_LENGTH,
    STATUS_DETAIL_KEY_PATTERN,
    STATUS_DETAIL_VALUE_MAX_LENGTH,
    STEP_TIMEOUT_MAX_MINUTES,
    ExecutionStatus,
    NotificationKind,
    OperationKind,
    Outcome,
    has_control_characters,
    is_job_id,
    is_namespace,
)
from edgewise.protocol.jobs._topics import (
    EVERY_THING_FILTER,
    REQUEST_FILTERS,
    Notification,
    Operation,
    Reply,
    notify_next_topic,
    notify_topic,
    parse_request_topic,
    parse_topic,
    reply_filter,
    reply_topic,
    request_topic,
)
from edgewise.protocol.jobs.errors import (
    JobsPayloadError,
    JobsRejection,
)

__all__ = [
    "CLIENT_TOKEN_MAX_LENGTH",
    "DEVICE_STATUSES",
    "EVERY_THING_FILTER",
    "JOB_ID_MAX_LENGTH",
    "JOB_ID_PATTERN",
    "NAMESPACE_MAX_LENGTH",
    "NAMESPACE_PATTERN",
    "NEXT",
    "PENDING_STATUSES",
    "REQUEST_FIELDS",
    "REQUEST_FILTERS",
    "STATUS_DETAIL_KEY_MAX_LENGTH",
    "STATUS_DETAIL_KEY_PATTERN",
    "STATUS_DETAIL_VALUE_MAX_LENGTH",
    "STEP_TIMEOUT_MAX_MINUTES",
    "Execution",
    "ExecutionReply",
    "ExecutionState",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExecutionsChanged",
    "JobsPayloadError",
    "JobsRejection",
    "NextExecutionChanged",
    "Notification",
    "NotificationKind",
    "Operation",
    "OperationKind",
    "Outcome",
    "PendingExecutions",
    "Rejected",
    "Reply",
    "Request",
    "UpdateReply",
    "accepted_payload",
    "client_token_of",
    "has_control_characters",
    "is_job_id",
    "is_namespace",
    "notify_next_topic",
    "notify_topic",
    "parse_execution",
    "parse_execution_reply",
    "parse_executions_changed",
    "parse_next_execution_changed",
    "parse_pending_executions",
    "parse_rejected",
    "parse_request",
    "parse_request_topic",
    "parse_topic",
    "parse_update_reply",
    "reply_filter",
    "reply_topic",
    "request_payload",
    "request_topic",
    "with_document",
]
