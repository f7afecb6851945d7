"""The jobs service's naming rules and limits, those of AWS IoT Jobs.

Patterns are anchored and readable by Python, pydantic and JSON Schema alike, so the same constants drive the
REST schemas, the MQTT request checks and the service. Those the MQTT messages carry are the protocol's
(:mod:`edgewise.protocol.jobs`), named here too so the REST schemas find every rule in one place.

AWS lists its limits at https://docs.aws.amazon.com/iot/latest/developerguide/job-limits.html.
"""

from __future__ import annotations

from edgewise.protocol.jobs import CLIENT_TOKEN_MAX_LENGTH as CLIENT_TOKEN_MAX_LENGTH
from edgewise.protocol.jobs import JOB_ID_MAX_LENGTH as JOB_ID_MAX_LENGTH
from edgewise.protocol.jobs import JOB_ID_PATTERN as JOB_ID_PATTERN
from edgewise.protocol.jobs import NAMESPACE_MAX_LENGTH as NAMESPACE_MAX_LENGTH
from edgewise.protocol.jobs import NAMESPACE_PATTERN as NAMESPACE_PATTERN
from edgewise.protocol.jobs import STATUS_DETAIL_KEY_MAX_LENGTH as STATUS_DETAIL_KEY_MAX_LENGTH
from edgewise.protocol.jobs import STATUS_DETAIL_KEY_PATTERN as STATUS_DETAIL_KEY_PATTERN
from edgewise.protocol.jobs import STATUS_DETAIL_VALUE_MAX_LENGTH as STATUS_DETAIL_VALUE_MAX_LENGTH
from edgewise.protocol.jobs import STEP_TIMEOUT_MAX_MINUTES as STEP_TIMEOUT_MAX_MINUTES
from edgewise.protocol.jobs import has_control_characters as has_control_characters
from edgewise.protocol.jobs import is_job_id as is_job_id
from edgewise.protocol.jobs import is_namespace as is_namespace

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
MAX_RETRIES = 10

#: What one ``J/notify`` lists at most (IN_PROGRESS first, then QUEUED, each oldest first).
NOTIFY_MAX_EXECUTIONS = 15
