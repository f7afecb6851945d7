"""S3 export tasks end to end on the device side, with the real parts: the ``stream-manager`` SDK appends tasks
to a real stream store through the real protocol server, the exporter uploads each file with a device
certificate over mutual TLS to a local HTTPS upload listener (the cloud's own, with a recording object sink),
and the statuses it writes are read back through the SDK and parsed by its own ``StatusMessage``."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from stream_manager import (
    ExportDefinition,
    MessageStreamDefinition,
    ReadMessagesOptions,
    S3ExportTaskDefinition,
    S3ExportTaskExecutorConfig,
    Status,
    StatusConfig,
    StatusLevel,
    StatusMessage,
    StrategyOnFull,
    StreamManagerClient,
)
from stream_manager.util import Util
from tests.support.pki import CertificateAuthority
from tests.support.ports import free_port
from tests.support.waiting import eventually

from edgewise.cloud.https_publish import (
    BodyReader,
    HttpsPublishServer,
    HttpsPublishSettings,
    ObjectUpload,
    PublishForbiddenError,
    PublishRefusedError,
    UploadUnavailableError,
)
from edgewise.runtime.fleet.download import artifact_context
from edgewise.runtime.streams.export import (
    ObjectUploader,
    RetrySettings,
    StreamExportService,
    TaskFailedError,
    parse_task,
)
from edgewise.runtime.streams.server import StreamServer
from edgewise.runtime.streams.store import StreamStore

from .conftest import RecordingChannel

TOKEN = "ABCDEFGHIJKLMNOP"
SOURCE = "files"
STATUS = "file-status"


@dataclass
class ObjectSink:
    """Keeps every upload it is sent; refuses the next ones with ``refusals`` first."""

    objects: dict[tuple[str, str], tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    attempts: int = 0
    refusals: list[PublishRefusedError] = field(default_factory=list)

    async def __call__(self, certificate: bytes, upload: ObjectUpload, body: BodyReader) -> None:
        self.attempts += 1
        if self.refusals:
            raise self.refusals.pop(0)
        data = await asyncio.to_thread(body.read, -1)
        assert hashlib.sha256(data).hexdigest() == upload.sha256
        self.objects[(upload.bucket, upload.key)] = (data, upload.user_metadata)


@dataclass
class Device:
    sdk: StreamManagerClient
    sink: ObjectSink
    service: StreamExportService
    root: Path


async def _refuse_publish(certificate: bytes, topic: str) -> Any:
    raise PublishForbiddenError("uploads only")


async def _no_publish(topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
    raise AssertionError("nothing is published")


@pytest.fixture
async def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Device]:
    authority = CertificateAuthority(tmp_path / "ca")
    server_files = authority.issue("localhost", server=True)
    device_files = authority.issue("device")
    sink = ObjectSink()
    listener = HttpsPublishServer(
        HttpsPublishSettings(
            host="127.0.0.1",
            port=free_port(),
            cafile=authority.certificate,
            certfile=server_files.certificate,
            keyfile=server_files.private_key,
        ),
        authorize=_refuse_publish,
        publish=_no_publish,
        upload=sink,
    )
    await listener.start()
    context = artifact_context(authority.certificate, device_files.certificate, device_files.private_key)
    root = tmp_path / "runtime-root"
    root.mkdir()
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
    store = await StreamStore.open(root / "streams")
    service = StreamExportService(
        store,
        channel=RecordingChannel(),
        objects=ObjectUploader("localhost", listener.port, context),
        refused_files=(root,),
        retry=RetrySettings(first=0.01, most=0.05),
    )
    await service.start()
    server = StreamServer(service, authenticate=lambda token: "com.example.Writer", port=0)
    await server.start()
    sdk = await asyncio.to_thread(StreamManagerClient, host="127.0.0.1", port=server.port, request_timeout=10)
    try:
        yield Device(sdk, sink, service, root)
    finally:
        await asyncio.to_thread(sdk.close)
        await server.close()
        await service.close()
        await store.close()
        await listener.close()


async def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(function, *args, **kwargs)


async def create_streams(device: Device, level: StatusLevel = StatusLevel.INFO) -> None:
    await call(
        device.sdk.create_message_stream,
        MessageStreamDefinition(name=STATUS, strategy_on_full=StrategyOnFull.RejectNewData),
    )
    exports = ExportDefinition(
        s3_task_executor=[
            S3ExportTaskExecutorConfig(
                identifier="to-store",
                status_config=StatusConfig(status_level=level, status_stream_name=STATUS),
            )
        ]
    )
    await call(
        device.sdk.create_message_stream,
        MessageStreamDefinition(
            name=SOURCE, strategy_on_full=StrategyOnFull.RejectNewData, export_definition=exports
        ),
    )


async def append_task(device: Device, input_url: str, key: str, **metadata: str) -> int:
    task = S3ExportTaskDefinition(input_url=input_url, bucket="my-bucket", key=key, user_metadata=metadata)
    payload = Util.validate_and_serialize_to_json_bytes(task)
    return int(await call(device.sdk.append_message, SOURCE, payload))


async def statuses(device: Device, count: int) -> list[StatusMessage]:
    messages = await call(
        device.sdk.read_messages,
        STATUS,
        ReadMessagesOptions(
            desired_start_sequence_number=0, min_message_count=count, read_timeout_millis=10_000
        ),
    )
    return [Util.deserialize_json_bytes_to_obj(message.payload, StatusMessage) for message in messages]


async def test_a_task_uploads_its_file_and_writes_in_progress_then_success_in_the_sdks_shape(
    device: Device, tmp_path: Path
) -> None:
    data = b"frame" * 100_000
    source = tmp_path / "capture.bin"
    source.write_bytes(data)
    await create_streams(device)

    sequence = await append_task(device, source.as_uri(), "cameras/front/capture.bin", camera="front")
    written = await statuses(device, 2)

    assert [message.status for message in written] == [Status.InProgress, Status.Success]
    success = written[1]
    assert success.status_level == StatusLevel.INFO
    assert success.status_context.stream_name == SOURCE
    assert success.status_context.export_identifier == "to-store"
    assert success.status_context.sequence_number == sequence
    assert success.status_context.s3_export_task_definition.key == "cameras/front/capture.bin"
    assert success.timestamp_epoch_ms > 0
    assert device.sink.objects[("my-bucket", "cameras/front/capture.bin")] == (data, {"camera": "front"})
    # The checkpoint moves once the final status is written.
    await eventually(
        lambda: device.service.describe(SOURCE).export_statuses[0].last_exported_sequence_number == sequence,
        what="the checkpoint",
    )
    info = await call(device.sdk.describe_message_stream, SOURCE)
    (status,) = info.export_statuses
    assert (status.last_exported_sequence_number, status.exported_messages_count) == (sequence, 1)
    assert status.exported_bytes_from_stream == len(data)
    assert status.error_message is None


async def test_a_task_that_may_not_run_fails_with_its_reason_and_the_next_task_still_runs(
    device: Device, tmp_path: Path
) -> None:
    (device.root / "secret.key").write_text("private")
    good = tmp_path / "good.csv"
    good.write_text("a,b\n")
    await create_streams(device, StatusLevel.ERROR)

    for url, key in (
        ("file:relative/path.csv", "a"),
        ((device.root / "secret.key").as_uri(), "b"),
        ((tmp_path / "missing.csv").as_uri(), "c"),
        (tmp_path.as_uri(), "d"),
        ("http://example.com/file", "e"),
        (good.as_uri(), "logs/!{timestamp:yyyy}/f"),
    ):
        await append_task(device, url, key)
    await append_task(device, good.as_uri(), "good.csv")
    await call(device.sdk.append_message, SOURCE, b"not json")
    failures = await statuses(device, 7)

    assert [message.status for message in failures] == [Status.Failure] * 7
    assert all(message.status_level == StatusLevel.ERROR for message in failures)
    reasons = [message.message for message in failures]
    assert reasons[0].startswith("inputUrl:")
    assert "absolute" in reasons[0]
    assert "which the stream manager does not export" in reasons[1]
    assert "No such file" in reasons[2]
    assert "not a regular file" in reasons[3]
    assert "not a file:// URL" in reasons[4]
    assert "templates are not supported" in reasons[5]
    assert "not an S3ExportTaskDefinition" in reasons[6]
    assert failures[6].status_context.s3_export_task_definition is None
    assert list(device.sink.objects) == [("my-bucket", "good.csv")]


async def test_an_unavailable_cloud_is_retried_and_a_forbidden_upload_fails(
    device: Device, tmp_path: Path
) -> None:
    source = tmp_path / "data.txt"
    source.write_text("payload")
    device.sink.refusals = [UploadUnavailableError("store down"), UploadUnavailableError("store down")]
    await create_streams(device)

    await append_task(device, source.as_uri(), "retried")
    first = await statuses(device, 2)
    device.sink.refusals = [PublishForbiddenError("policy")]
    await append_task(device, source.as_uri(), "forbidden")
    written = await statuses(device, 4)

    assert [message.status for message in first] == [Status.InProgress, Status.Success]
    assert device.sink.attempts == 4
    assert [message.status for message in written[2:]] == [Status.InProgress, Status.Failure]
    assert "403" in written[3].message
    assert list(device.sink.objects) == [("my-bucket", "retried")]


async def test_tasks_already_run_are_not_run_again_after_a_restart(device: Device, tmp_path: Path) -> None:
    source = tmp_path / "data.txt"
    source.write_text("payload")
    await create_streams(device)
    first = await append_task(device, source.as_uri(), "once")
    await eventually(
        lambda: device.service.describe(SOURCE).export_statuses[0].last_exported_sequence_number == first,
        what="the checkpoint",
    )

    await device.service.close()
    await device.service.start()
    await append_task(device, source.as_uri(), "twice")

    await eventually(lambda: ("my-bucket", "twice") in device.sink.objects, what="the second upload")
    assert device.sink.attempts == 2


def test_parse_task_refuses_what_is_not_a_task_by_field(tmp_path: Path) -> None:
    good = tmp_path / "f"
    good.write_text("x")
    url = good.as_uri()
    cases = {
        b'{"inputUrl": "%s", "bucket": "Bad", "key": "k"}' % url.encode(): "bucket:",
        b'{"inputUrl": "%s", "bucket": "b.b.b", "key": ""}' % url.encode(): "key:",
        b'{"inputUrl": "%s", "bucket": "bbb", "key": "k", "extra": 1}' % url.encode(): "extra:",
        b'{"inputUrl": "%s", "bucket": "bbb", "key": "k", "userMetadata": {"a b": "x"}}'
        % url.encode(): "userMetadata:",
        b"[1]": "not a JSON object",
        b"x" * 70_000: "bytes long",
    }
    for payload, expected in cases.items():
        with pytest.raises(TaskFailedError, match=expected):
            parse_task(payload)
    task = parse_task('{"inputUrl": "%s", "bucket": "bbb", "key": "k/l-é"}'.encode() % url.encode())
    assert (task.path, task.bucket, task.key) == (good.resolve(), "bbb", "k/l-é")
