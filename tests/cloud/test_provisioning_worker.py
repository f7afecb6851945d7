"""The provisioning worker on a real Mosquitto: AWS's topics and payloads for create, create-from-csr and
RegisterThing, rejections with AWS's error shape (a pre-provisioning hook's refusal too, and a thing name a
claim certificate or the cloud itself holds), the registration notice, and the cleanup of expired ownership
tokens by the worker's clock.

The requesting client connects on the worker listener (password, every topic): the device-side ACL for
claim certificates is not part of this slice.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection, BrokerSettings, MosquittoBroker, WorkerListenerSettings
from edgewise.cloud.db import create_database_engine, create_session_factory, upgrade_database, utcnow
from edgewise.cloud.identity import CertificateAuthority, CertificateStatus
from edgewise.cloud.identity import service as identity
from edgewise.cloud.provisioning import service
from edgewise.cloud.provisioning.hook import PreProvisioningHook
from edgewise.cloud.provisioning.worker import ProvisioningWorker
from edgewise.cloud.registry import service as registry
from tests.cloud.broker.clients import TestClient
from tests.cloud.broker.conftest import authority, broker, settings  # noqa: F401
from tests.cloud.test_provisioning_service import DEVICE_POLICY, fleet_template
from tests.cloud.test_provisioning_templates import HookServer
from tests.support.pki import signing_request
from tests.support.waiting import eventually

CREATE = "$aws/certificates/create/json"
CREATE_FROM_CSR = "$aws/certificates/create-from-csr/json"
PROVISION = "$aws/provisioning-templates/fleet/provision/json"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'edgewise.db'}"
    upgrade_database(url)
    engine = create_database_engine(url)
    factory = create_session_factory(engine)
    with factory() as session:
        identity.create_policy(session, "device", DEVICE_POLICY)
        registry.create_group(session, "fleet")
        service.create_template(session, "fleet", fleet_template())
    yield factory
    engine.dispose()


@pytest.fixture
async def registrations(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
) -> AsyncIterator[list[None]]:
    """Starts a worker; the list grows by one on each registration notice."""
    notices: list[None] = []
    assert broker.settings.workers is not None
    worker = ProvisioningWorker(
        sessions,
        CertificateAuthority.create("Cloud CA"),
        BrokerConnection.for_listener(broker.settings.workers),
        on_registered=lambda: notices.append(None),
    )
    await worker.start()
    try:
        yield notices
    finally:
        await worker.close()


@pytest.fixture
async def device(
    settings: BrokerSettings,  # noqa: F811
    registrations: list[None],
) -> AsyncIterator[TestClient]:
    """A client for the requests, once broker and worker run."""
    assert settings.workers is not None
    client = TestClient(
        settings.workers.port,
        "claim-device",
        credentials=(settings.workers.username, settings.workers.password),
    )
    assert await asyncio.to_thread(client.start)
    for request in (CREATE, CREATE_FROM_CSR, PROVISION):
        await asyncio.to_thread(client.subscribe, f"{request}/accepted", f"{request}/rejected")
    yield client
    await asyncio.to_thread(client.close)


async def request(client: TestClient, topic: str, payload: bytes) -> tuple[str, dict[str, Any]]:
    """Publish ``payload`` on ``topic`` and return the outcome and body of the first reply."""
    seen = len(client.topics())
    await asyncio.to_thread(client.publish, topic, payload)
    replies = await eventually(
        lambda: [m for m in client.messages[seen:] if m.topic.startswith(topic + "/")],
        what=f"reply to {topic}",
    )
    body: dict[str, Any] = json.loads(replies[0].payload)
    return replies[0].topic.rsplit("/", 1)[1], body


async def test_create_keys_then_register_thing(
    device: TestClient, registrations: list[None], sessions: sessionmaker[Session]
) -> None:
    outcome, created = await request(device, CREATE, b"{}")
    assert outcome == "accepted"
    assert set(created) == {"certificateId", "certificatePem", "privateKey", "certificateOwnershipToken"}
    key = serialization.load_pem_private_key(created["privateKey"].encode(), None)
    certificate = x509.load_pem_x509_certificate(created["certificatePem"].encode())
    assert certificate.public_key() == key.public_key()

    outcome, registered = await request(
        device,
        PROVISION,
        json.dumps(
            {
                "certificateOwnershipToken": created["certificateOwnershipToken"],
                "parameters": {"SerialNumber": "9"},
            }
        ).encode(),
    )

    assert (outcome, registered) == (
        "accepted",
        {"thingName": "sensor-9", "deviceConfiguration": {"serial": "9"}},
    )
    await eventually(lambda: registrations, what="the registration notice")
    with sessions() as session:
        stored = identity.get_certificate(session, created["certificateId"])
        assert stored.status is CertificateStatus.ACTIVE


async def test_create_from_csr_returns_no_private_key(device: TestClient, registrations: list[None]) -> None:
    csr = signing_request("device")
    outcome, created = await request(
        device, CREATE_FROM_CSR, json.dumps({"certificateSigningRequest": csr}).encode()
    )
    assert outcome == "accepted"
    assert set(created) == {"certificateId", "certificatePem", "certificateOwnershipToken"}


@pytest.mark.parametrize(
    ("topic", "payload", "status", "code"),
    [
        (PROVISION, b'{"certificateOwnershipToken": ""}', 400, "InvalidCertificateOwnershipToken"),
        (PROVISION, b'{"certificateOwnershipToken": "forged"}', 400, "InvalidCertificateOwnershipToken"),
        (PROVISION, b"not json", 400, "InvalidPayload"),
        (CREATE_FROM_CSR, b'{"certificateSigningRequest": "garbage"}', 400, "InvalidParameters"),
        (
            "$aws/provisioning-templates/other/provision/json",
            b'{"certificateOwnershipToken": "x"}',
            404,
            None,
        ),
    ],
)
async def test_bad_requests_are_rejected_with_the_aws_error_shape(
    device: TestClient, registrations: list[None], topic: str, payload: bytes, status: int, code: str | None
) -> None:
    if not topic.startswith(PROVISION) and topic.startswith("$aws/provisioning-templates/"):
        await asyncio.to_thread(device.subscribe, f"{topic}/rejected")
    outcome, rejected = await request(device, topic, payload)
    assert outcome == "rejected"
    assert set(rejected) == {"statusCode", "errorCode", "errorMessage"}
    assert rejected["statusCode"] == status
    if code is not None:
        assert rejected["errorCode"] == code
    assert registrations == []


async def test_a_hook_that_says_no_is_rejected_with_access_denied(
    device: TestClient, registrations: list[None], sessions: sessionmaker[Session]
) -> None:
    hook_server = HookServer()
    try:
        hook_server.reply = {"allowProvisioning": False}
        with sessions() as session:
            service.create_template(
                session, "hooked", fleet_template(), hook=PreProvisioningHook(hook_server.url)
            )
        hooked = "$aws/provisioning-templates/hooked/provision/json"
        await asyncio.to_thread(device.subscribe, f"{hooked}/accepted", f"{hooked}/rejected")
        _, created = await request(device, CREATE, b"{}")

        outcome, rejected = await request(
            device,
            hooked,
            json.dumps(
                {
                    "certificateOwnershipToken": created["certificateOwnershipToken"],
                    "parameters": {"SerialNumber": "3"},
                }
            ).encode(),
        )

        assert (outcome, rejected["statusCode"], rejected["errorCode"]) == ("rejected", 403, "AccessDenied")
        assert "pre-provisioning hook did not allow provisioning" in rejected["errorMessage"]
        assert [sent["parameters"] for sent in hook_server.requests] == [{"SerialNumber": "3"}]
        assert registrations == []
    finally:
        hook_server.close()


@pytest.mark.parametrize("taken", ["claim certificate", "edgewise-jobs", "edgewise-components"])
async def test_a_thing_name_taken_by_a_claim_certificate_or_the_cloud_is_rejected_and_nothing_is_stored(
    device: TestClient, registrations: list[None], sessions: sessionmaker[Session], taken: str
) -> None:
    with sessions() as session:
        service.create_template(session, "named", fleet_template(ThingName={"Ref": "SerialNumber"}))
        claim = service.create_claim_certificate(session, CertificateAuthority.create("CA"), ["device"])
        name = claim.certificate.common_name if taken == "claim certificate" else taken
    named = "$aws/provisioning-templates/named/provision/json"
    await asyncio.to_thread(device.subscribe, f"{named}/accepted", f"{named}/rejected")
    _, created = await request(device, CREATE, b"{}")

    def register(thing_name: str) -> bytes:
        token = created["certificateOwnershipToken"]
        return json.dumps(
            {"certificateOwnershipToken": token, "parameters": {"SerialNumber": thing_name}}
        ).encode()

    outcome, rejected = await request(device, named, register(name))

    assert (outcome, rejected["statusCode"], rejected["errorCode"]) == ("rejected", 400, "InvalidParameters")
    assert rejected["errorMessage"].startswith(
        f"Field 'Resources.thing.Properties.ThingName' is invalid: {name!r} is reserved"
    )
    assert registrations == []
    with sessions() as session:
        assert registry.list_things(session).total == 0
        assert (
            identity.get_certificate(session, created["certificateId"]).status is CertificateStatus.INACTIVE
        )
    # The ownership token was not used up: the device can still register under a name of its own.
    outcome, registered = await request(device, named, register("sensor-1"))
    assert (outcome, registered["thingName"]) == ("accepted", "sensor-1")


async def test_cleanup_runs_when_due_by_the_injected_clock(sessions: sessionmaker[Session]) -> None:
    start = utcnow()
    now = [start + datetime.timedelta(minutes=1)]
    worker = ProvisioningWorker(
        sessions,
        CertificateAuthority.create("Cloud CA"),
        BrokerConnection.for_listener(WorkerListenerSettings.generate(1883)),
        clock=lambda: now[0],
        cleanup_interval=datetime.timedelta(minutes=10),
    )
    with sessions() as session:
        claimed = service.create_claimed_certificate(session, CertificateAuthority.create("CA"), now=start)
        certificate_id = claimed.certificate.certificate_id

    assert await worker.clean_up_if_due() == service.Cleanup(0, [])
    now[0] = start + datetime.timedelta(minutes=9)
    assert await worker.clean_up_if_due() is None, "not due: the last cleanup was 8 minutes ago"
    now[0] = start + datetime.timedelta(minutes=11)
    assert await worker.clean_up_if_due() == service.Cleanup(1, [certificate_id])
    with sessions() as session:
        assert identity.get_certificate(session, certificate_id).status is CertificateStatus.REVOKED
