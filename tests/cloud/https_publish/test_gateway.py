"""HTTPS publish end to end with the real parts: the cloud's CA and store, the managed Mosquitto, and real HTTPS
clients (httpx, requests, curl) presenting device certificates. An allowed publish reaches a paho subscriber with
its payload; what the policy does not allow, a revoked certificate, an oversized body, a bad parameter and
malformed HTTP are each refused with AWS's answer, without affecting the other connections."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import uuid
from pathlib import Path

import httpx
import pytest
import requests

from edgewise.cloud.broker import BrokerConnection, MosquittoBroker
from edgewise.cloud.https_publish import (
    MAX_PAYLOAD_BYTES,
    HttpsPublishServer,
    HttpsPublishSettings,
    HttpsPublishWorker,
    Publisher,
)
from edgewise.cloud.identity import CertificateStatus
from edgewise.cloud.identity import service as identity
from tests.cloud.broker.clients import TestClient
from tests.cloud.https_publish.conftest import Device, Store
from tests.support.pki import CertificateAuthority
from tests.support.waiting import eventually


def client_context(ca_file: Path, device: Device | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if device is not None:
        context.load_cert_chain(device.credentials.certificate, device.credentials.private_key)
    return context


def device_client(store: Store, gateway: HttpsPublishWorker, device: Device | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"https://localhost:{gateway.server.port}",
        verify=client_context(store.ca_file, device),
        timeout=20,
    )


def payloads(observer: TestClient, topic: str) -> list[bytes]:
    return [bytes(message.payload) for message in list(observer.messages) if message.topic == topic]


async def test_an_allowed_publish_reaches_a_subscriber_with_its_payload_on_one_kept_alive_connection(
    store: Store, gateway: HttpsPublishWorker, observer: TestClient
) -> None:
    device = store.enroll("A")
    async with device_client(store, gateway, device) as client:
        first = await client.post("/topics/dt/A/temperature?qos=1", content=b'{"celsius": 21.5}')
        second = await client.post("/topics/dt%2FA%2Fhumidity?qos=0", content=b"40")

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["message"] == "OK"
    assert uuid.UUID(body["traceId"])
    assert first.headers["x-amzn-RequestId"] == body["traceId"]
    assert first.headers["content-type"] == "application/json"
    assert second.status_code == 200, second.text
    await eventually(lambda: payloads(observer, "dt/A/humidity"), what="the QoS 0 message")
    assert payloads(observer, "dt/A/temperature") == [b'{"celsius": 21.5}']
    assert payloads(observer, "dt/A/humidity") == [b"40"]
    statistics = gateway.server.statistics()
    assert (statistics.requests, statistics.published, statistics.refused) == (2, 2, 0)


async def test_a_topic_the_policy_does_not_allow_is_403_and_nothing_is_published(
    store: Store, gateway: HttpsPublishWorker, observer: TestClient
) -> None:
    device = store.enroll("A")
    store.enroll("B")
    async with device_client(store, gateway, device) as client:
        refused = [
            await client.post(f"/topics/{topic}?qos=1", content=b"from A")
            for topic in ("dt/B/x", "$aws/things/B/shadow/update", "$SYS/broker/x", "other/topic")
        ]
        marker = await client.post("/topics/dt/A/marker?qos=1", content=b"marker")

    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert answer.json()["message"] == "Forbidden"
        assert answer.headers["x-amzn-ErrorType"] == "ForbiddenException"
        assert answer.json()["traceId"] == answer.headers["x-amzn-RequestId"]
    assert marker.status_code == 200
    # The marker was acknowledged by the broker after the refusals, so anything they let through came first.
    await eventually(lambda: payloads(observer, "dt/A/marker"), what="the marker")
    assert [message.topic for message in observer.messages] == ["dt/A/marker"]


async def test_no_client_certificate_or_one_from_another_ca_fails_the_tls_handshake(
    store: Store, gateway: HttpsPublishWorker, observer: TestClient, tmp_path: Path
) -> None:
    stranger = CertificateAuthority(tmp_path / "other-ca").issue("A")
    store.enroll("A")
    other_context = client_context(store.ca_file, None)
    other_context.load_cert_chain(stranger.certificate, stranger.private_key)

    async with device_client(store, gateway, None) as anonymous:
        with pytest.raises(httpx.TransportError):
            await anonymous.post("/topics/dt/A/x", content=b"anonymous")
    async with httpx.AsyncClient(
        base_url=f"https://localhost:{gateway.server.port}", verify=other_context, timeout=20
    ) as impostor:
        with pytest.raises(httpx.TransportError):
            await impostor.post("/topics/dt/A/x", content=b"impostor")

    assert observer.messages == []


async def test_a_certificate_revoked_while_its_connection_is_open_is_refused_at_once(
    store: Store, gateway: HttpsPublishWorker, observer: TestClient
) -> None:
    device = store.enroll("A")
    async with device_client(store, gateway, device) as client:
        before = await client.post("/topics/dt/A/x?qos=1", content=b"before")
        with store.sessions() as session:
            identity.update_certificate_status(session, device.certificate_id, CertificateStatus.REVOKED)
        after = await client.post("/topics/dt/A/x?qos=1", content=b"after")
        again = await client.post("/topics/dt/A/x?qos=1", content=b"again")

    assert before.status_code == 200
    assert after.status_code == 403
    assert after.headers["connection"] == "close"
    assert again.status_code == 403
    await eventually(lambda: payloads(observer, "dt/A/x"), what="the message sent before the revocation")
    assert payloads(observer, "dt/A/x") == [b"before"]


async def test_a_body_over_128_kib_is_413_unread_and_one_of_128_kib_is_published(
    store: Store, gateway: HttpsPublishWorker, observer: TestClient
) -> None:
    device = store.enroll("A")

    async def chunks() -> object:
        for _ in range(3):
            yield b"x" * (MAX_PAYLOAD_BYTES // 2)

    async with device_client(store, gateway, device) as client:
        declared = await client.post("/topics/dt/A/big?qos=1", content=b"x" * (MAX_PAYLOAD_BYTES + 1))
        chunked = await client.post("/topics/dt/A/big?qos=1", content=chunks())  # type: ignore[arg-type]
        largest = await client.post("/topics/dt/A/big?qos=1", content=b"y" * MAX_PAYLOAD_BYTES)

    for refused in (declared, chunked):
        assert refused.status_code == 413, refused.text
        assert refused.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
        assert str(MAX_PAYLOAD_BYTES) in refused.json()["message"]
        assert refused.headers["connection"] == "close"
    assert largest.status_code == 200, largest.text
    await eventually(lambda: payloads(observer, "dt/A/big"), what="the 128 KiB message")
    assert payloads(observer, "dt/A/big") == [b"y" * MAX_PAYLOAD_BYTES]


async def test_a_bad_qos_parameter_or_path_is_refused_by_name_and_the_connection_stays_usable(
    store: Store, gateway: HttpsPublishWorker, observer: TestClient
) -> None:
    device = store.enroll("A")
    async with device_client(store, gateway, device) as client:
        bad_qos = await client.post("/topics/dt/A/x?qos=2", content=b"q")
        bad_retain = await client.post("/topics/dt/A/x?retain=maybe", content=b"r")
        mqtt5 = await client.post(
            "/topics/dt/A/x", content=b"p", headers={"x-amz-mqtt5-correlation-data": "YQ=="}
        )
        wrong_method = await client.get("/topics/dt/A/x")
        wrong_path = await client.post("/shadow/A", content=b"s")
        fine = await client.post("/topics/dt/A/x?qos=1&retain=false", content=b"fine")

    assert (bad_qos.status_code, bad_qos.headers["x-amzn-ErrorType"]) == (400, "InvalidRequestException")
    assert bad_qos.json()["message"] == "qos: '2' is not a QoS; use 0 or 1"
    assert bad_retain.status_code == 400
    assert bad_retain.json()["message"].startswith("retain: ")
    assert mqtt5.status_code == 400
    assert "x-amz-mqtt5-correlation-data" in mqtt5.json()["message"]
    assert wrong_method.status_code == 405
    assert wrong_path.status_code == 404
    assert fine.status_code == 200
    await eventually(lambda: payloads(observer, "dt/A/x"), what="the accepted message")
    assert payloads(observer, "dt/A/x") == [b"fine"]
    assert gateway.server.statistics().open_connections <= 1


async def test_malformed_http_is_400_and_closes_only_its_own_connection(
    store: Store, gateway: HttpsPublishWorker, observer: TestClient
) -> None:
    device = store.enroll("A")
    context = client_context(store.ca_file, device)
    async with device_client(store, gateway, device) as client:
        assert (await client.post("/topics/dt/A/x", content=b"one")).status_code == 200
        reader, writer = await asyncio.open_connection(
            "localhost", gateway.server.port, ssl=context, server_hostname="localhost"
        )
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 20)
        writer.close()
        oversized_head = await client.post(
            "/topics/dt/A/x", content=b"h", headers={"x-padding": "p" * 20_000}
        )
        after = await client.post("/topics/dt/A/x", content=b"two")

    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in answer.lower()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["traceId"]
    assert oversized_head.status_code == 431
    assert after.status_code == 200
    await eventually(lambda: len(payloads(observer, "dt/A/x")) == 2, what="both good messages")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_and_requests_publish_as_aws_documents_it(
    store: Store, gateway: HttpsPublishWorker, observer: TestClient
) -> None:
    device = store.enroll("A")
    url = f"https://localhost:{gateway.server.port}/topics/dt/A/curl?qos=1"
    curl = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--show-error", "--tlsv1.2", "--cacert", str(store.ca_file),
        "--cert", str(device.credentials.certificate), "--key", str(device.credentials.private_key),
        "-X", "POST", "-d", '{"message": "Hello, world"}', url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(curl.communicate(), 30)
    posted = await asyncio.to_thread(
        requests.post,
        url.replace("/curl", "/requests"),
        data=b"from requests",
        cert=(str(device.credentials.certificate), str(device.credentials.private_key)),
        verify=str(store.ca_file),
        timeout=20,
    )

    assert curl.returncode == 0, stderr
    assert json.loads(stdout)["message"] == "OK"
    assert posted.status_code == 200
    assert posted.json()["message"] == "OK"
    await eventually(
        lambda: payloads(observer, "dt/A/requests") and payloads(observer, "dt/A/curl"), what="both messages"
    )
    assert payloads(observer, "dt/A/curl") == [b'{"message": "Hello, world"}']


async def test_a_qos_1_publish_the_broker_does_not_acknowledge_is_503_and_qos_0_is_not_waited_for(
    store: Store, broker: MosquittoBroker, https_settings: HttpsPublishSettings
) -> None:
    device = store.enroll("A")
    assert broker.settings.workers is not None
    worker = HttpsPublishWorker(
        https_settings,
        store.sessions,
        BrokerConnection.for_listener(broker.settings.workers),
        publish_timeout=0.5,
    )
    await worker.start()
    try:
        await broker.stop()
        async with device_client(store, worker, device) as client:
            unacknowledged = await client.post("/topics/dt/A/x?qos=1", content=b"lost?")
            fire_and_forget = await client.post("/topics/dt/A/x?qos=0", content=b"maybe")
    finally:
        await worker.close()

    assert unacknowledged.status_code == 503
    assert unacknowledged.headers["x-amzn-ErrorType"] == "ServiceUnavailableException"
    assert "did not acknowledge" in unacknowledged.json()["message"]
    assert fire_and_forget.status_code == 200


async def test_a_failing_store_is_500_for_that_request_and_the_connection_lives_on(
    store: Store, https_settings: HttpsPublishSettings
) -> None:
    device = store.enroll("A")
    published: list[tuple[str, bytes]] = []
    failures = ["the store is down"]

    async def authorize(certificate: bytes, topic: str) -> Publisher:
        if failures:
            raise RuntimeError(failures.pop())
        return Publisher("A", device.certificate_id)

    async def publish(topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        published.append((topic, payload))

    server = HttpsPublishServer(https_settings, authorize=authorize, publish=publish)
    await server.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"https://localhost:{server.port}",
            verify=client_context(store.ca_file, device),
            timeout=20,
        ) as client:
            failed = await client.post("/topics/dt/A/x", content=b"first")
            recovered = await client.post("/topics/dt/A/x", content=b"second")
    finally:
        await server.close()

    assert (failed.status_code, failed.headers["x-amzn-ErrorType"]) == (500, "InternalFailureException")
    assert recovered.status_code == 200
    assert published == [("dt/A/x", b"second")]
    assert server.statistics().requests == 2
