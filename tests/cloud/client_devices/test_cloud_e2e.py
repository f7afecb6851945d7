"""Client devices end to end against a real ``edgewise cloud up``: a core device (its own certificate, the default
policy, a real paho MQTT 5 client) holds the three conversations with the cloud's worker; client devices run the
unmodified awsiotsdk ``DiscoveryClient`` against the HTTPS listener; the broker's rendered ACL grants the core its
clients' shadow topics while they are associated; and the ``edgewise core-device`` commands drive the API."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from awscrt import io
from awsiot.greengrass_discovery import (
    DiscoverResponse,
    DiscoveryClient,
    DiscoveryException,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from edgewise.cloud.identity import CertificateAuthority
from edgewise.protocol import client_devices as protocol
from edgewise.protocol.client_devices import CaUpdate, ConnectivityEntry, ConnectivityUpdate
from tests.cloud.broker.clients import TestClient
from tests.support.cloud_process import CloudProcess
from tests.support.pki import Credentials
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CORE = "core-1"
DEADLINE = 20


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("client-devices") / "data") as process:
        yield process.wait_ready()


def run(cloud: CloudProcess, *args: str) -> Result:
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": cloud.admin_token, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(app, [*args, "--api", cloud.api_url], env=env)


def bootstrap(cloud: CloudProcess, thing: str, directory: Path) -> Credentials:
    """Register ``thing`` with a certificate and the default policy; its files."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": None, "EDGEWISE_API_URL": None}
    result = CliRunner().invoke(
        app,
        ["device", "bootstrap", "--data", str(cloud.data_dir), "--thing", thing, "--out", str(directory)],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    return Credentials(
        directory / "device.pem.crt", directory / "private.pem.key", directory / "root-ca.pem", 0
    )


@pytest.fixture(scope="module")
def devices(cloud: CloudProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Credentials]:
    root = tmp_path_factory.mktemp("devices")
    return {name: bootstrap(cloud, name, root / name) for name in (CORE, "sensor-1", "sensor-2")}


class Core:
    """The core device's side of the protocol, over its own MQTT connection."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def payloads(self, topic: str) -> list[bytes]:
        return [bytes(message.payload) for message in list(self.client.messages) if message.topic == topic]

    def notices(self) -> int:
        """How many change notices the core has received."""
        return len(self.payloads(protocol.changed_topic(CORE)))

    def wait_notice(self, before: int) -> None:
        """Wait for a change notice after the ``before`` first ones."""
        wait_until(lambda: self.notices() > before, what="a change notice")

    def ask(self, topic: str, payload: bytes, token: str, *, retry: bool = False) -> tuple[str, bytes]:
        """Publish a request and wait for its answer (sent again until one comes when ``retry``: the core's
        ACL entry may still be on its way to the broker); the answer's outcome and payload."""
        replies = {outcome: f"{topic}/{outcome}" for outcome in (protocol.ACCEPTED, protocol.REJECTED)}

        def answer() -> tuple[str, bytes] | None:
            for outcome, reply in replies.items():
                for received in self.payloads(reply):
                    if protocol.client_token_of(received) == token:
                        return outcome, received
            if retry:
                self.client.publish(topic, payload)
            return None

        self.client.publish(topic, payload)
        found = wait_until(
            answer, timeout=3 * DEADLINE, interval=0.5 if retry else 0.02, what=f"answer on {topic}"
        )
        assert found is not None
        return found

    def trust_list(self) -> protocol.ClientDeviceList:
        token = uuid.uuid4().hex
        outcome, payload = self.ask(protocol.get_topic(CORE), protocol.build_get_request(token), token)
        assert outcome == protocol.ACCEPTED, payload
        return protocol.parse_client_device_list(payload)


@pytest.fixture(scope="module")
def core(cloud: CloudProcess, devices: dict[str, Credentials]) -> Iterator[Core]:
    with TestClient(cloud.mqtt_port, CORE, identity=devices[CORE]) as client:
        assert client.start()
        replies = [
            f"{topic}/{outcome}"
            for topic in (
                protocol.get_topic(CORE),
                protocol.connectivity_topic(CORE),
                protocol.ca_topic(CORE),
            )
            for outcome in (protocol.ACCEPTED, protocol.REJECTED)
        ]
        client.subscribe(*replies, protocol.changed_topic(CORE))
        found = Core(client)
        token = "first"
        outcome, _ = found.ask(protocol.get_topic(CORE), protocol.build_get_request(token), token, retry=True)
        assert outcome == protocol.ACCEPTED
        yield found


def discover(cloud: CloudProcess, credentials: Credentials, thing: str) -> DiscoverResponse:
    options = io.TlsContextOptions.create_client_with_mtls_from_path(
        str(credentials.certificate), str(credentials.private_key)
    )
    options.override_default_trust_store_from_path(None, str(credentials.ca))
    client = DiscoveryClient(
        io.ClientBootstrap.get_or_create_static_default(),
        io.SocketOptions(),
        io.ClientTlsContext(options),
        region="edgewise",
        gg_server_name="localhost",
    )
    client.port = cloud.https_publish_port
    return client.discover(thing).result(DEADLINE)


def discovery_status(cloud: CloudProcess, credentials: Credentials, thing: str) -> int:
    with pytest.raises(DiscoveryException) as refused:
        discover(cloud, credentials, thing)
    status: int = refused.value.http_response_code
    return status


def acl_section(cloud: CloudProcess, user: str) -> list[str]:
    """The lines of ``user``'s section of the broker's rendered ACL file."""
    lines = (cloud.data_dir / "broker" / "devices.acl").read_text().splitlines()
    if f"user {user}" not in lines:
        return []
    start = lines.index(f"user {user}") + 1
    section = lines[start:]
    return section[: section.index("")] if "" in section else section


def test_a_core_device_and_its_client_devices(
    cloud: CloudProcess, devices: dict[str, Credentials], core: Core
) -> None:
    with cloud.api(cloud.admin_token) as admin:
        exercise(cloud, devices, core, admin)


def exercise(cloud: CloudProcess, devices: dict[str, Credentials], core: Core, admin: httpx.Client) -> None:
    shadows = "topic readwrite $aws/things/sensor-1/shadow/#"
    assert core.trust_list().client_devices == ()
    assert discovery_status(cloud, devices["sensor-1"], "sensor-1") == 404
    assert shadows not in acl_section(cloud, CORE)

    # Associating tells the core, which then gets sensor-1 with its ACTIVE certificate, the cloud CA and its CRL.
    changed_before = core.notices()
    response = admin.post(
        f"/core-devices/{CORE}/client-devices/associate", json={"entries": [{"thingName": "sensor-1"}]}
    )
    assert response.json() == {"errorEntries": []}
    core.wait_notice(changed_before)
    listed = core.trust_list()
    [sensor] = listed.client_devices
    der = x509.load_pem_x509_certificate(devices["sensor-1"].certificate.read_bytes()).public_bytes(
        Encoding.DER
    )
    assert sensor.thing_name == "sensor-1"
    assert [certificate.sha256 for certificate in sensor.certificates] == [hashlib.sha256(der).hexdigest()]
    assert listed.ca_certificates == (devices["sensor-1"].ca.read_text(),)
    assert listed.crl is not None
    assert listed.crl.startswith("-----BEGIN X509 CRL-----")
    wait_until(
        lambda: shadows in acl_section(cloud, CORE), what="the client's shadow topics in the core's ACL"
    )

    # The core reports its addresses and its local CA; discovery hands both to the client device.
    entries = (
        ConnectivityEntry("eth0", "192.0.2.7", 8883, "wired"),
        ConnectivityEntry("lo", "127.0.0.1", 8884),
    )
    token = uuid.uuid4().hex
    outcome, payload = core.ask(
        protocol.connectivity_topic(CORE),
        protocol.build_connectivity_update(ConnectivityUpdate(token, entries)),
        token,
    )
    assert outcome == protocol.ACCEPTED
    assert protocol.parse_connectivity_accepted(payload).version == 1
    stored = admin.get(f"/core-devices/{CORE}/connectivity").json()
    assert [entry["hostAddress"] for entry in stored["connectivityInfo"]] == ["192.0.2.7", "127.0.0.1"]
    local_ca = CertificateAuthority.create("Core1LocalCA").certificate_pem
    token = uuid.uuid4().hex
    outcome, _ = core.ask(
        protocol.ca_topic(CORE), protocol.build_ca_update(CaUpdate(token, (local_ca,))), token
    )
    assert outcome == protocol.ACCEPTED

    found = discover(cloud, devices["sensor-1"], "sensor-1")
    [group] = found.gg_groups
    assert group.gg_group_id == f"greengrassV2-coreDevice-{CORE}"
    assert group.certificate_authorities == [local_ca]
    [found_core] = group.cores
    assert found_core.thing_arn.endswith(f":thing/{CORE}")
    assert [(info.id, info.host_address, info.port, info.metadata) for info in found_core.connectivity] == [
        ("eth0", "192.0.2.7", 8883, "wired"),
        ("lo", "127.0.0.1", 8884, ""),
    ]
    # A client device not associated with any core, and a certificate asking for another thing.
    assert discovery_status(cloud, devices["sensor-2"], "sensor-2") == 404
    assert discovery_status(cloud, devices["sensor-1"], "sensor-2") == 403

    # A malformed request is rejected naming its field, with its token.
    bad = json.dumps(
        {"clientToken": "bad-1", "connectivityInfo": [{"id": "x", "hostAddress": "h", "portNumber": 0}]}
    )
    outcome, payload = core.ask(protocol.connectivity_topic(CORE), bad.encode(), "bad-1")
    assert outcome == protocol.REJECTED
    rejection = protocol.parse_rejection(payload)
    assert (rejection.code, rejection.client_token) == (protocol.INVALID_PAYLOAD, "bad-1")
    assert "connectivityInfo[0].portNumber" in rejection.message

    # A client certificate put on hold leaves the trust list (the core is told), and comes back when reactivated.
    fingerprint = sensor.certificates[0].certificate_id
    for status, expected in (("INACTIVE", ()), ("ACTIVE", sensor.certificates)):
        changed_before = core.notices()
        assert admin.patch(f"/certificates/{fingerprint}", json={"status": status}).status_code == 200
        core.wait_notice(changed_before)
        assert core.trust_list().client_devices[0].certificates == expected

    # Disassociating takes it all back.
    changed_before = core.notices()
    admin.post(
        f"/core-devices/{CORE}/client-devices/disassociate", json={"entries": [{"thingName": "sensor-1"}]}
    )
    core.wait_notice(changed_before)
    assert core.trust_list().client_devices == ()
    wait_until(
        lambda: shadows not in acl_section(cloud, CORE), what="the shadow topics gone from the core's ACL"
    )
    assert discovery_status(cloud, devices["sensor-1"], "sensor-1") == 404


def test_the_core_device_commands(cloud: CloudProcess) -> None:
    with cloud.api(cloud.admin_token) as admin:
        for name in ("gateway-9", "probe-1", "probe-2"):
            assert admin.post("/things", json={"thingName": name}).status_code == 201
    associated = run(cloud, "core-device", "associate", "gateway-9", "probe-1", "ghost")
    assert associated.exit_code == 1
    assert "Associated probe-1 with gateway-9" in associated.stdout
    assert "ghost: ResourceNotFoundException" in associated.stderr
    assert run(cloud, "core-device", "associate", "gateway-9", "probe-2").exit_code == 0
    listed = run(cloud, "core-device", "client-devices", "gateway-9", "--json")
    assert listed.exit_code == 0, listed.stderr
    names = [device["thingName"] for device in json.loads(listed.stdout)["associatedClientDevices"]]
    assert names == ["probe-1", "probe-2"]
    assert run(cloud, "core-device", "disassociate", "gateway-9", "probe-1").exit_code == 0
    table = run(cloud, "core-device", "client-devices", "gateway-9")
    assert "probe-2" in table.stdout
    assert "probe-1" not in table.stdout

    updated = run(
        cloud, "core-device", "connectivity", "gateway-9", "--set", "10.0.0.5:8883", "--set", "[::1]:8884"
    )
    assert updated.exit_code == 0, updated.stderr
    assert "Version 1" in updated.stdout
    shown = run(cloud, "core-device", "connectivity", "gateway-9", "--json")
    info: list[dict[str, Any]] = json.loads(shown.stdout)["connectivityInfo"]
    assert [(entry["hostAddress"], entry["portNumber"]) for entry in info] == [
        ("10.0.0.5", 8883),
        ("::1", 8884),
    ]
    refused = run(cloud, "core-device", "connectivity", "gateway-9", "--set", "10.0.0.5")
    assert refused.exit_code != 0
    assert "--set" in refused.stderr
    bad_port = run(cloud, "core-device", "connectivity", "gateway-9", "--set", "10.0.0.5:99999")
    assert bad_port.exit_code != 0
    assert "portNumber" in bad_port.stderr
