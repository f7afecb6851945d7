"""The values the Jobs protocol allows: job ids, namespaces, status details, the limits AWS IoT sets, the
execution statuses and the names of operations, outcomes and notifications."""

from __future__ import annotations

import enum
import re
from typing import Final, Literal

#: The job id that describes the next pending execution.
NEXT: Final = "$next"

JOB_ID_PATTERN: Final = r"^[a-zA-Z0-9_-]+$"
JOB_ID_MAX_LENGTH: Final = 64
NAMESPACE_PATTERN: Final = r"^[a-zA-Z0-9_-]+$"
NAMESPACE_MAX_LENGTH: Final = 64
STATUS_DETAIL_KEY_PATTERN: Final = r"^[a-zA-Z0-9:_-]+$"
STATUS_DETAIL_KEY_MAX_LENGTH: Final = 128
STATUS_DETAIL_VALUE_MAX_LENGTH: Final = 1024
CLIENT_TOKEN_MAX_LENGTH: Final = 64
STEP_TIMEOUT_MAX_MINUTES: Final = 10080

OperationKind = Literal["get_pending", "start_next", "describe", "update"]
Outcome = Literal["accepted", "rejected"]
NotificationKind = Literal["notify", "notify_next"]

_JOB_ID = re.compile(JOB_ID_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
