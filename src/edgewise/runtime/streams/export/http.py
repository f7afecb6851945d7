"""``HTTPConfig`` exports: each batch is POSTed to the configured URL, as Greengrass's HTTP exporter does.

``RAW_NOT_BATCHED`` (the SDK's default) posts one request per message with its payload as the body;
``JSON_BATCHED`` posts one request per batch whose body is a JSON array of the SDK's ``Message`` maps
(``streamName``, ``sequenceNumber``, ``ingestTime``, ``payload`` in base64). A 2xx answer acknowledges; any other
status is a refusal the exporter retries (429 reads as ``Throttled``, other 4xx as ``InvalidPayload``, the rest
as ``InternalError``). Redirects are not followed. Requests run in a worker thread (urllib blocks) with a
timeout, and only the first bytes of an answer are read. With ``RAW_NOT_BATCHED`` a retried batch starts
after the messages already posted, so one message is not posted twice for a later one's failure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from typing import Final
from urllib.parse import urlsplit

from edgewise.protocol import telemetry
from edgewise.runtime.streams.export.channel import Answer, ExportDeliveryError
from edgewise.runtime.streams.export.definitions import HTTPExportFormat

DEFAULT_TIMEOUT: Final = 30.0
#: How much of an answer's body is read (for the error message); the rest is ignored.
_MAX_ANSWER_BYTES: Final = 4096
_TOO_MANY_REQUESTS: Final = 429


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER: Final = urllib.request.build_opener(_NoRedirects)


class HTTPChannel:
    """POSTs export batches to ``uri`` (``http://`` or ``https://``, checked by the definition's parser)."""

    def __init__(
        self, uri: str, export_format: HTTPExportFormat, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if urlsplit(uri).scheme not in ("http", "https"):
            raise ValueError(f"uri must be an http:// or https:// URL, not {uri!r}")
        self._uri = uri
        self._format = export_format
        self._timeout = timeout
        #: Records of a batch already posted, by client token, while that batch is being retried.
        self._posted: dict[str, int] = {}

    async def send(self, batch: telemetry.ExportBatch) -> Answer:
        """POST ``batch``; its acknowledgement once every request got a 2xx answer.

        Raises:
            ExportDeliveryError: the URL could not be reached or did not answer in time.
        """
        if self._format is HTTPExportFormat.JSON_BATCHED:
            bodies = [(_json_body(batch), "application/json")]
        else:
            bodies = [(record.payload, "application/octet-stream") for record in batch.records]
        done = self._posted.get(batch.client_token, 0)
        for index in range(done, len(bodies)):
            body, content_type = bodies[index]
            status, text = await asyncio.to_thread(self._post, body, content_type)
            if not 200 <= status < 300:
                self._posted[batch.client_token] = index
                return telemetry.BatchRejection(
                    batch.client_token, _code(status), f"HTTP {status} from {self._uri}: {text}"
                )
        self._posted.pop(batch.client_token, None)
        return telemetry.BatchAccepted(
            client_token=batch.client_token,
            stored=len(batch.records),
            duplicates=0,
            last_sequence_number=batch.records[-1].sequence_number,
        )

    def _post(self, body: bytes, content_type: str) -> tuple[int, str]:
        """Blocks; call via asyncio.to_thread."""
        # The scheme is http or https: the definition's parser and __init__ refuse any other.
        request = urllib.request.Request(  # noqa: S310
            self._uri, data=body, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                return response.status, ""
        except urllib.error.HTTPError as error:
            with error:
                text = error.read(_MAX_ANSWER_BYTES).decode("utf-8", "replace")
            return error.code, text
        except (urllib.error.URLError, OSError, ValueError) as error:
            msg = f"POST to {self._uri} failed: {error}"
            raise ExportDeliveryError(msg) from error


def _code(status: int) -> telemetry.RejectionCode:
    if status == _TOO_MANY_REQUESTS:
        return telemetry.THROTTLED
    if 400 <= status < 500:
        return telemetry.INVALID_PAYLOAD
    return telemetry.INTERNAL_ERROR


def _json_body(batch: telemetry.ExportBatch) -> bytes:
    return json.dumps(
        [
            {
                "streamName": batch.source,
                "sequenceNumber": record.sequence_number,
                "ingestTime": record.timestamp_ms,
                "payload": base64.b64encode(record.payload).decode("ascii"),
            }
            for record in batch.records
        ]
    ).encode()
