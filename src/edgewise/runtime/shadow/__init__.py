"""Local shadows: AWS IoT shadow documents kept on the device, served over IPC (``aws.greengrass.ShadowManager``).

:class:`ShadowService` runs the operations; the document semantics are in :mod:`edgewise.protocol.shadow.document`
(shared with the cloud's shadow service), the SQLite storage (with each shadow's sync state) in ``_store``. The
cloud sync is :mod:`edgewise.runtime.shadow.sync` (the component's configuration in ``settings``, its decisions in
``sync_decision``, its cloud requests in ``sync_cloud``, its transactions in ``sync_state``).
"""

from __future__ import annotations

from edgewise.protocol.shadow.document import (
    MAX_DEPTH,
    encode_document,
    topic_prefix,
    validate_shadow_name,
    validate_thing_name,
)
from edgewise.protocol.shadow.errors import (
    InvalidShadowRequestError,
    PayloadTooLargeError,
    ShadowError,
    ShadowNotFoundError,
    ShadowVersionConflictError,
)
from edgewise.runtime.shadow._service import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_SIZE_LIMIT,
    MAX_PAGE_SIZE,
    MAX_SIZE_LIMIT,
    NamedShadowPage,
    ShadowService,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_SIZE_LIMIT",
    "MAX_DEPTH",
    "MAX_PAGE_SIZE",
    "MAX_SIZE_LIMIT",
    "InvalidShadowRequestError",
    "NamedShadowPage",
    "PayloadTooLargeError",
    "ShadowError",
    "ShadowNotFoundError",
    "ShadowService",
    "ShadowVersionConflictError",
    "encode_document",
    "topic_prefix",
    "validate_shadow_name",
    "validate_thing_name",
]
