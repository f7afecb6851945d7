"""HTTPS publish as AWS IoT Core has it: a device ``POST``\\ s a message to ``/topics/<topic>?qos=1`` with its
certificate over mutual TLS, under the same policy as its MQTT publishes, and the message enters the same broker.

``request`` reads what a request asks for, ``authorization`` decides it with the broker's rules, ``server`` is the
listener (asyncio TLS and h11) and ``worker`` the cloud worker that joins them to the broker. ``uploads`` reads
object uploads (``PUT /streams/s3/<bucket>/<key>``), which the worker streams into the cloud's object store.
"""

from __future__ import annotations

from edgewise.cloud.https_publish.authorization import Publisher, authorize_publish, identify, may_publish
from edgewise.cloud.https_publish.errors import (
    HttpsPublishStartError,
    InvalidPublishRequestError,
    PublishForbiddenError,
    PublishMethodNotAllowedError,
    PublishPayloadTooLargeError,
    PublishRefusedError,
    PublishTargetNotFoundError,
    PublishUnavailableError,
    UploadDigestMismatchError,
    UploadLengthRequiredError,
    UploadUnavailableError,
)
from edgewise.cloud.https_publish.request import PublishRequest, parse_publish_target
from edgewise.cloud.https_publish.server import (
    DEFAULT_PORT,
    MAX_PAYLOAD_BYTES,
    HttpsPublishServer,
    HttpsPublishSettings,
    HttpsPublishStatistics,
)
from edgewise.cloud.https_publish.uploads import (
    MAX_OBJECT_BYTES,
    UPLOAD_PREFIX,
    BodyReader,
    ObjectUpload,
    parse_upload,
)
from edgewise.cloud.https_publish.worker import HttpsPublishWorker

__all__ = [
    "DEFAULT_PORT",
    "MAX_OBJECT_BYTES",
    "MAX_PAYLOAD_BYTES",
    "UPLOAD_PREFIX",
    "BodyReader",
    "HttpsPublishServer",
    "HttpsPublishSettings",
    "HttpsPublishStartError",
    "HttpsPublishStatistics",
    "HttpsPublishWorker",
    "InvalidPublishRequestError",
    "ObjectUpload",
    "PublishForbiddenError",
    "PublishMethodNotAllowedError",
    "PublishPayloadTooLargeError",
    "PublishRefusedError",
    "PublishRequest",
    "PublishTargetNotFoundError",
    "PublishUnavailableError",
    "Publisher",
    "UploadDigestMismatchError",
    "UploadLengthRequiredError",
    "UploadUnavailableError",
    "authorize_publish",
    "identify",
    "may_publish",
    "parse_publish_target",
    "parse_upload",
]
