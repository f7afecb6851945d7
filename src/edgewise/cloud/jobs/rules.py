"""The jobs service's naming rules and limits (AWS IoT Jobs', see reference/aws-iot.md §2 and §5.5).

Patterns are anchored and readable by Python, pydantic and JSON Schema alike, so the same constants drive the
REST schemas, the MQTT request checks and the service.
"""

from __future__ import annotations

import re

JOB_ID_PATTERN = r"^[a-zA-Z0-9_-]+$"
JOB_ID_MAX_LENGTH = 64
NAMESPACE_PATTERN = r"^[a-zA-Z0-9_-]+$"
NAMESPACE_MAX_LENGTH = 64
DESCRIPTION_PATTERN = r"^[^\x00-\x1f\x7f]*$"
DESCRIPTION_MAX_LENGTH = 2028
REASON_CODE_PATTERN = r"^[A-Z0-9_]+$"
REASON_CODE_MAX_LENGTH = 128
COMMENT_MAX_LENGTH = 2028
#: Job documents are at most 32 KB of UTF-8 JSON.
DOCUMENT_MAX_BYTES = 32 * 1024
TARGETS_MAX = 1000
TARGET_MAX_LENGTH = 2048

MAX_PER_MINUTE = 1000
INCREMENT_FACTOR_MIN = 1.1
INCREMENT_FACTOR_MAX = 5.0
IN_PROGRESS_TIMEOUT_MAX_MINUTES = 10080
STEP_TIMEOUT_MAX_MINUTES = 10080
MAX_RETRIES = 10

STATUS_DETAIL_KEY_PATTERN = r"^[a-zA-Z0-9:_-]+$"
STATUS_DETAIL_KEY_MAX_LENGTH = 128
STATUS_DETAIL_VALUE_MAX_LENGTH = 1024
CLIENT_TOKEN_MAX_LENGTH = 64
#: What one ``J/notify`` lists at most (IN_PROGRESS first, then QUEUED, each oldest first).
NOTIFY_MAX_EXECUTIONS = 15

_JOB_ID = re.compile(JOB_ID_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_job_id(text: str) -> bool:
    """Whether ``text`` is a valid job id."""
    return 1 <= len(text) <= JOB_ID_MAX_LENGTH and _JOB_ID.fullmatch(text) is not None


def is_namespace(text: str) -> bool:
    """Whether ``text`` is a valid namespace id."""
    return 1 <= len(text) <= NAMESPACE_MAX_LENGTH and _NAMESPACE.fullmatch(text) is not None


def has_control_characters(text: str) -> bool:
    """Whether ``text`` contains an ASCII control character."""
    return _CONTROL.search(text) is not None
