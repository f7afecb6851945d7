"""``HTTPConfig`` exports POST to a real local HTTP server: one request per message or one JSON array per batch; a
refused request is retried from that message on, and a URL that does not answer is a delivery error."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.support.ports import free_port

from edgewise.protocol import telemetry
from edgewise.runtime.streams.export import ExportDeliveryError, HTTPChannel, HTTPExportFormat


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []  # answers to give, in turn; then 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ingest"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        if status == 200:
            self.server.bodies.append(body)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


BATCH = telemetry.ExportBatch(
    client_token="t1",
    stream="source",
    source="source",
    export_id="web",
    records=tuple(telemetry.ExportRecord(n, 1000 + n, f"m{n}".encode()) for n in range(3)),
)


async def test_raw_export_posts_each_message_once_even_across_a_refusal(receiver: Receiver) -> None:
    channel = HTTPChannel(receiver.url, HTTPExportFormat.RAW_NOT_BATCHED)
    receiver.statuses = [200, 503]

    refused = await channel.send(BATCH)
    assert isinstance(refused, telemetry.BatchRejection)
    assert refused.code == telemetry.INTERNAL_ERROR
    accepted = await channel.send(BATCH)

    assert accepted == telemetry.BatchAccepted("t1", 3, 0, 2)
    assert receiver.bodies == [b"m0", b"m1", b"m2"]


async def test_json_batched_export_posts_the_sdks_message_maps(receiver: Receiver) -> None:
    channel = HTTPChannel(receiver.url, HTTPExportFormat.JSON_BATCHED)

    assert isinstance(await channel.send(BATCH), telemetry.BatchAccepted)

    (body,) = receiver.bodies
    assert json.loads(body) == [
        {
            "streamName": "source",
            "sequenceNumber": n,
            "ingestTime": 1000 + n,
            "payload": base64.b64encode(f"m{n}".encode()).decode(),
        }
        for n in range(3)
    ]


async def test_an_unreachable_url_is_a_delivery_error_and_a_file_url_is_refused() -> None:
    channel = HTTPChannel(f"http://127.0.0.1:{free_port()}/", HTTPExportFormat.RAW_NOT_BATCHED, timeout=5)
    with pytest.raises(ExportDeliveryError, match=r"POST to http://127\.0\.0\.1"):
        await channel.send(BATCH)
    with pytest.raises(ValueError, match=r"http:// or https://"):
        HTTPChannel("file:///etc/passwd", HTTPExportFormat.RAW_NOT_BATCHED)


async def test_a_429_reads_as_throttled(receiver: Receiver) -> None:
    receiver.statuses = [429]
    answer = await HTTPChannel(receiver.url, HTTPExportFormat.JSON_BATCHED).send(BATCH)
    assert isinstance(answer, telemetry.BatchRejection)
    assert answer.code == telemetry.THROTTLED
