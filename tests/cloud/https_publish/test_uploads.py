"""Object uploads (the stream manager's S3 export tasks) on the HTTPS publish listener, with the real parts: the
cloud's CA and store, the managed Mosquitto, a local-directory object store and httpx presenting device
certificates. An allowed upload is stored under its SHA-256 and filed under the thing; a wrong digest, a
missing or oversized length, a bad bucket or key and a policy that does not allow it are each refused with
nothing stored."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edgewise.cloud.broker import BrokerConnection, MosquittoBroker
from edgewise.cloud.components import LocalArtifactStore
from edgewise.cloud.https_publish import (
    HttpsPublishSettings,
    HttpsPublishWorker,
    InvalidPublishRequestError,
    ObjectUpload,
    parse_upload,
)
from edgewise.cloud.identity import service as identity
from edgewise.cloud.settings import CloudSettings
from edgewise.cloud.telemetry.objects import get_object, list_objects
from edgewise.protocol.object_uploads import upload_topic
from tests.cloud.https_publish.conftest import Store
from tests.cloud.https_publish.test_gateway import client_context

LIMIT = 64 * 1024


@pytest.fixture
def objects(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "objects")


@pytest.fixture
async def uploads(
    store: Store, broker: MosquittoBroker, https_settings: HttpsPublishSettings, objects: LocalArtifactStore
) -> AsyncIterator[HttpsPublishWorker]:
    """HTTPS publish taking uploads of at most ``LIMIT`` bytes into ``objects``."""
    assert broker.settings.workers is not None
    settings = HttpsPublishSettings(
        host=https_settings.host,
        port=https_settings.port,
        cafile=https_settings.cafile,
        certfile=https_settings.certfile,
        keyfile=https_settings.keyfile,
        max_object_bytes=LIMIT,
    )
    worker = HttpsPublishWorker(
        settings, store.sessions, BrokerConnection.for_listener(broker.settings.workers), store=objects
    )
    await worker.start()
    try:
        yield worker
    finally:
        await worker.close()


def client(store: Store, worker: HttpsPublishWorker, thing: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"https://localhost:{worker.server.port}",
        verify=client_context(store.ca_file, store.enroll(thing)),
        timeout=20,
    )


def digest(body: bytes) -> dict[str, str]:
    return {"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}


def stored_files(objects: LocalArtifactStore) -> list[str]:
    return sorted(path.name for path in (objects.root / "sha256").rglob("*") if path.is_file())


async def test_an_allowed_upload_is_stored_under_its_digest_and_filed_under_the_thing_and_a_second_replaces_it(
    store: Store, uploads: HttpsPublishWorker, objects: LocalArtifactStore
) -> None:
    first, second = b"a,b\n1,2\n" * 1000, b"replaced"
    async with client(store, uploads, "A") as device:
        answer = await device.put(
            "/streams/s3/my-bucket/logs/2026/12/one%C3%A9file.csv",
            content=first,
            headers={**digest(first), "x-amz-meta-origin": "camera-1"},
        )
        again = await device.put(
            "/streams/s3/my-bucket/logs/2026/12/one%C3%A9file.csv", content=second, headers=digest(second)
        )

    assert answer.status_code == 200, answer.text
    assert answer.json()["message"] == "OK"
    assert again.status_code == 200, again.text
    with store.sessions() as session:
        row = get_object(session, thing_name="A", bucket="my-bucket", key="logs/2026/12/oneéfile.csv")
        assert row is not None
        assert (row.sha256, row.size) == (hashlib.sha256(second).hexdigest(), len(second))
        assert row.user_metadata == {}
        assert len(list_objects(session, thing_name="A")) == 1
    with objects.open(hashlib.sha256(second).hexdigest()) as reader:
        assert reader.read() == second
    assert objects.exists(hashlib.sha256(first).hexdigest())


async def test_user_metadata_is_kept_and_each_thing_has_its_own_namespace(
    store: Store, uploads: HttpsPublishWorker
) -> None:
    async with client(store, uploads, "A") as a, client(store, uploads, "B") as b:
        for device, body in ((a, b"from A"), (b, b"from B")):
            answer = await device.put(
                "/streams/s3/shared/key", content=body, headers={**digest(body), "x-amz-meta-origin": "x"}
            )
            assert answer.status_code == 200, answer.text

    with store.sessions() as session:
        rows = {row.thing_name: row for row in list_objects(session, bucket="shared")}
    assert {name: row.size for name, row in rows.items()} == {"A": 6, "B": 6}
    assert rows["A"].user_metadata == {"origin": "x"}
    assert rows["A"].sha256 != rows["B"].sha256


async def test_a_body_whose_digest_differs_is_400_and_nothing_is_stored(
    store: Store, uploads: HttpsPublishWorker, objects: LocalArtifactStore
) -> None:
    async with client(store, uploads, "A") as device:
        answer = await device.put("/streams/s3/bucket/key", content=b"actual", headers=digest(b"declared"))

    assert answer.status_code == 400, answer.text
    assert answer.headers["x-amzn-ErrorType"] == "BadDigestException"
    assert hashlib.sha256(b"actual").hexdigest() in answer.json()["message"]
    assert answer.headers["connection"] == "close"
    assert stored_files(objects) == []
    assert not list((objects.root / "tmp").iterdir())
    with store.sessions() as session:
        assert list_objects(session) == []


@pytest.mark.parametrize(
    ("target", "headers", "status", "named"),
    [
        ("/streams/s3/Bad_Bucket/key", None, 400, "bucket"),
        ("/streams/s3/192.168.0.1/key", None, 400, "bucket"),
        ("/streams/s3/a..b/key", None, 400, "bucket"),
        ("/streams/s3/bucket/", None, 400, "key"),
        ("/streams/s3/bucket/a%7Bb", None, 400, "key"),
        ("/streams/s3/bucket/%FF", None, 400, "key"),
        ("/streams/s3/bucket/" + "k" * 1025, None, 400, "key"),
        ("/streams/s3/bucket/key", {}, 400, "x-amz-content-sha256"),
        ("/streams/s3/bucket/key", {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}, 400, "x-amz-content-sha256"),
        ("/streams/s3/bucket/key?acl", None, 400, "query"),
    ],
)
async def test_an_invalid_bucket_key_or_digest_is_400_naming_it_and_nothing_is_stored(
    store: Store,
    uploads: HttpsPublishWorker,
    objects: LocalArtifactStore,
    target: str,
    headers: dict[str, str] | None,
    status: int,
    named: str,
) -> None:
    body = b"payload"
    async with client(store, uploads, "A") as device:
        answer = await device.put(target, content=body, headers=digest(body) if headers is None else headers)

    assert answer.status_code == status, answer.text
    assert answer.json()["message"].startswith(f"{named}:")
    assert stored_files(objects) == []


async def test_an_upload_over_the_limit_is_413_without_length_411_and_other_methods_405(
    store: Store, uploads: HttpsPublishWorker, objects: LocalArtifactStore
) -> None:
    big = b"x" * (LIMIT + 1)

    async def chunked() -> AsyncIterator[bytes]:
        yield b"small"

    async with client(store, uploads, "A") as device:
        over = await device.put("/streams/s3/bucket/big", content=big, headers=digest(big))
    async with client(store, uploads, "B") as device:
        unsized = await device.put("/streams/s3/bucket/big", content=chunked(), headers=digest(b"small"))
        posted = await device.post("/streams/s3/bucket/big", content=b"x", headers=digest(b"x"))
        exact = await device.put("/streams/s3/bucket/exact", content=big[:LIMIT], headers=digest(big[:LIMIT]))

    assert (over.status_code, over.headers["x-amzn-ErrorType"]) == (413, "RequestEntityTooLargeException")
    assert (unsized.status_code, unsized.headers["x-amzn-ErrorType"]) == (411, "LengthRequiredException")
    assert posted.status_code == 405
    assert exact.status_code == 200, exact.text
    assert stored_files(objects) == [hashlib.sha256(big[:LIMIT]).hexdigest()]


async def test_an_upload_the_policy_does_not_allow_is_403_and_nothing_is_stored(
    store: Store, uploads: HttpsPublishWorker, objects: LocalArtifactStore
) -> None:
    device = store.enroll("A")
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/A"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/dt/A/*"},
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": f"arn:aws:iot:*:*:topic/{upload_topic('A', 'allowed')}",
            },
        ],
    }
    with store.sessions() as session:
        identity.detach_policy_from_certificate(session, "EdgewiseDefaultDevicePolicy", device.certificate_id)
        identity.create_policy(session, "UploadsToOneBucket", json.dumps(document))
        identity.attach_policy_to_certificate(session, "UploadsToOneBucket", device.certificate_id)
    body = b"data"
    async with httpx.AsyncClient(
        base_url=f"https://localhost:{uploads.server.port}",
        verify=client_context(store.ca_file, device),
        timeout=20,
    ) as http:
        refused = await http.put("/streams/s3/other/key", content=body, headers=digest(body))
        allowed = await http.put("/streams/s3/allowed/key", content=body, headers=digest(body))

    assert (refused.status_code, refused.json()["message"]) == (403, "Forbidden")
    assert allowed.status_code == 200, allowed.text
    with store.sessions() as session:
        assert [row.bucket for row in list_objects(session)] == ["allowed"]


async def test_the_publish_path_still_works_beside_uploads(store: Store, uploads: HttpsPublishWorker) -> None:
    async with client(store, uploads, "A") as device:
        answer = await device.post("/topics/dt/A/x?qos=0", content=b"1")
    assert answer.status_code == 200, answer.text


def _headers(body_sha: str, length: int | None) -> Sequence[tuple[bytes, bytes]]:
    headers = [(b"x-amz-content-sha256", body_sha.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return headers


@given(bucket=st.text(max_size=80), key=st.text(max_size=40))
def test_parse_upload_either_accepts_a_valid_name_or_refuses_it_by_field(bucket: str, key: str) -> None:
    target = "/streams/s3/" + quote(bucket, safe="") + "/" + quote(key, safe="/")
    outcome: ObjectUpload | InvalidPublishRequestError
    try:
        outcome = parse_upload("PUT", target, _headers("a" * 64, 3), max_object_bytes=10)
    except InvalidPublishRequestError as error:
        outcome = error
    if isinstance(outcome, InvalidPublishRequestError):
        assert outcome.field in ("bucket", "key")
    else:
        assert (outcome.bucket, outcome.key, outcome.size, outcome.sha256) == (bucket, key, 3, "a" * 64)
        assert 3 <= len(bucket) <= 63


def test_the_upload_bound_is_a_cloud_setting_of_5_gib_by_default(tmp_path: Path) -> None:
    assert CloudSettings(data_dir=tmp_path).stream_upload_max_bytes == 5 * 1024**3
    environ = {"EDGEWISE_CLOUD_STREAM_UPLOAD_MAX_BYTES": "1048576"}
    assert CloudSettings.from_environ(environ, data_dir=tmp_path).stream_upload_max_bytes == 1024**2
    with pytest.raises(ValidationError, match="stream_upload_max_bytes"):
        CloudSettings.from_environ({"EDGEWISE_CLOUD_STREAM_UPLOAD_MAX_BYTES": "0"}, data_dir=tmp_path)
