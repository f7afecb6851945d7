"""The gate in front of a real Mosquitto, with real paho-mqtt and awsiotsdk clients: a client device with an ACTIVE
certificate and a policy connects, publishes and subscribes; a device in no device group is refused with CONNACK
"not authorized"; a certificate from another CA is refused at the TLS handshake; the broker enforces the topics
of the policy; a device dropped from the trust list is disconnected."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from tests.support.pki import CertificateAuthority, Credentials
from tests.support.ports import free_port
from tests.support.waiting import eventually

from edgewise.protocol.client_devices import ClientCertificate, ClientDevice, ClientDeviceList
from edgewise.runtime.clientdevices.auth_settings import parse_auth_settings
from edgewise.runtime.clientdevices.authority import Authority
from edgewise.runtime.clientdevices.broker import LocalBroker
from edgewise.runtime.clientdevices.certificates import CoreCertificates
from edgewise.runtime.clientdevices.gate import Gate
from edgewise.runtime.clientdevices.trust import TrustStore

AUTH_CONFIGURATION = {
    "deviceGroups": {
        "formatVersion": "2021-03-05",
        "definitions": {"Sensors": {"selectionRule": "thingName: sensor*", "policyName": "SensorPolicy"}},
        "policies": {
            "SensorPolicy": {
                "AllowConnect": {
                    "statementDescription": "Connect with the thing name as client id.",
                    "operations": ["mqtt:connect"],
                    "resources": ["mqtt:clientId:${iot:Connection.Thing.ThingName}"],
                },
                "AllowOwnTopics": {
                    "operations": ["mqtt:publish"],
                    "resources": ["mqtt:topic:sensors/${iot:Connection.Thing.ThingName}/*"],
                },
                "AllowReading": {
                    "operations": ["mqtt:subscribe"],
                    "resources": ["mqtt:topicfilter:sensors/#"],
                },
            }
        },
    }
}


def _sha256(credentials: Credentials) -> str:
    der = x509.load_pem_x509_certificate(credentials.certificate.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    return hashlib.sha256(der).hexdigest()


def device_list(ca: CertificateAuthority, devices: dict[str, Credentials]) -> ClientDeviceList:
    return ClientDeviceList(
        client_devices=tuple(
            ClientDevice(name, (ClientCertificate(_sha256(credentials), _sha256(credentials)),))
            for name, credentials in devices.items()
        ),
        ca_certificates=(ca.certificate.read_text(),),
        crl=ca.crl.read_text(),
        timestamp=1,
    )


@dataclass
class Client:
    """A paho client; what it saw arrives from paho's thread."""

    client: paho.Client
    connack: list[Any] = field(default_factory=list)
    subacks: list[Any] = field(default_factory=list)
    pubacks: dict[int, Any] = field(default_factory=dict)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_client(client_id: str, version: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5) -> Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version)
    seen = Client(client)
    client.on_connect = lambda _c, _u, _f, reason, _p: seen.connack.append(reason)
    client.on_subscribe = lambda _c, _u, _m, reasons, _p: seen.subacks.append(reasons)
    client.on_publish = lambda _c, _u, mid, reason, _p: seen.pubacks.__setitem__(mid, reason)
    client.on_message = lambda _c, _u, message: seen.messages.append((message.topic, bytes(message.payload)))
    client.on_disconnect = lambda *_: seen.disconnected.set()
    return seen


@dataclass
class Core:
    ca: CertificateAuthority
    core_ca: Path
    trust: TrustStore
    broker: LocalBroker
    gate: Gate
    devices: dict[str, Credentials]

    def device(
        self,
        name: str,
        *,
        client_id: str | None = None,
        version: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    ) -> Client:
        credentials = self.devices[name]
        seen = mqtt_client(client_id or name, version)
        seen.client.tls_set(
            ca_certs=str(self.core_ca),
            certfile=str(credentials.certificate),
            keyfile=str(credentials.private_key),
        )
        seen.client.connect("localhost", self.gate.port)
        seen.client.loop_start()
        return seen

    def observer(self) -> Client:
        seen = mqtt_client("observer")
        access = self.broker.access
        seen.client.username_pw_set(access.username, access.password)
        seen.client.connect(access.host, access.port)
        seen.client.loop_start()
        return seen


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    ca = CertificateAuthority(tmp_path / "cloud-ca")
    devices = {name: ca.issue(name) for name in ("sensor-1", "sensor-2", "stranger")}
    trust = TrustStore(tmp_path / "auth" / "trust-list.json")
    await trust.accept(device_list(ca, devices))
    certificates = CoreCertificates(tmp_path / "auth")
    await asyncio.to_thread(certificates.open)
    await asyncio.to_thread(certificates.issue_server_certificate, ["localhost", "127.0.0.1"], 172_800)
    authority = Authority(parse_auth_settings(AUTH_CONFIGURATION), trust, certificates)
    broker = LocalBroker(tmp_path / "broker", max_packet_size=131_072, orphan_environment={})
    await broker.start()
    await broker.set_devices(authority.broker_acls())
    gate = Gate(
        authority,
        host="127.0.0.1",
        port=free_port(),
        broker_address=lambda: (broker.access.host, broker.access.port),
        broker_login=lambda thing: asyncio.to_thread(broker.login_of, thing),
    )
    await gate.start()
    try:
        yield Core(ca, certificates.ca_file, trust, broker, gate, devices)
    finally:
        await gate.close()
        await broker.close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for seen in opened:
        seen.close()


async def test_a_device_with_a_policy_connects_publishes_and_subscribes_within_its_topics(
    core: Core, clients: list[Client]
) -> None:
    observer = core.observer()
    clients.append(observer)
    await eventually(lambda: observer.connack, what="the observer's CONNACK")
    observer.client.subscribe([("#", 1), ("$aws/#", 1)])
    await eventually(lambda: observer.subacks, what="the observer's SUBACK")
    sensor = await asyncio.to_thread(core.device, "sensor-1")
    clients.append(sensor)
    await eventually(lambda: sensor.connack, what="the sensor's CONNACK")
    assert [str(reason) for reason in sensor.connack] == ["Success"]
    assert core.gate.connected_things() == ["sensor-1"]

    sensor.client.subscribe([("sensors/#", 1)])
    sensor.client.subscribe([("secret/#", 1)])
    await eventually(lambda: len(sensor.subacks) == 2, what="the sensor's SUBACKs")
    forbidden = sensor.client.publish("forbidden/x", b"no", qos=1).mid
    allowed = sensor.client.publish("sensors/sensor-1/temperature", b"21.5", qos=1).mid
    await eventually(lambda: allowed in sensor.pubacks and forbidden in sensor.pubacks, what="the PUBACKs")
    assert str(sensor.pubacks[forbidden]) == "Not authorized"
    assert str(sensor.pubacks[allowed]) == "Success"
    # The broker delivers the allowed message; the forbidden one, sent first, reached nobody.
    await eventually(
        lambda: "sensors/sensor-1/temperature" in observer.topics(), what="the message at the observer"
    )
    await eventually(
        lambda: "sensors/sensor-1/temperature" in sensor.topics(), what="the message back at the sensor"
    )
    assert "forbidden/x" not in observer.topics()
    # A topic outside its filters never reaches the device, though the broker granted the subscription.
    observer.client.publish("secret/plans", b"x", qos=1)
    observer.client.publish("sensors/marker", b"m", qos=1)
    await eventually(lambda: "sensors/marker" in sensor.topics(), what="the marker at the sensor")
    assert "secret/plans" not in sensor.topics()


async def test_a_device_in_no_device_group_is_refused_not_authorized(
    core: Core, clients: list[Client]
) -> None:
    for version, expected in (
        (MQTTProtocolVersion.MQTTv311, "Not authorized"),
        (MQTTProtocolVersion.MQTTv5, "Not authorized"),
    ):
        stranger = await asyncio.to_thread(core.device, "stranger", version=version)
        clients.append(stranger)
        await eventually(lambda seen=stranger: seen.connack, what="the CONNACK")  # type: ignore[misc]
        assert [str(reason) for reason in stranger.connack] == [expected]
        assert stranger.connack[0].is_failure
    # A sensor whose client id is not its thing name is refused the same way.
    renamed = await asyncio.to_thread(core.device, "sensor-1", client_id="someone-else")
    clients.append(renamed)
    await eventually(lambda: renamed.connack, what="the CONNACK")
    assert [str(reason) for reason in renamed.connack] == ["Not authorized"]
    assert core.gate.connected_things() == []


def _answer_to_a_bad_connect(port: int, core_ca: Path, credentials: Credentials) -> bytes:
    """What the gate answers a malformed CONNECT from ``credentials``: a CONNACK once TLS admitted it, nothing
    (end of stream, or a TLS alert) when the handshake refused the certificate."""
    context = ssl.create_default_context(cafile=str(core_ca))
    context.load_cert_chain(credentials.certificate, credentials.private_key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        try:
            tls.sendall(b"\x10\x00")
            return tls.recv(16)
        except (ssl.SSLError, ConnectionResetError):
            return b""


async def test_a_certificate_from_another_ca_is_refused_at_the_tls_handshake(
    core: Core, tmp_path: Path
) -> None:
    other = CertificateAuthority(tmp_path / "other-ca", name="Another CA")
    outsider = other.issue("sensor-1")
    trusted = core.devices["sensor-2"]

    # The same question from a trusted certificate gets an MQTT answer ("unacceptable protocol version").
    assert await asyncio.to_thread(_answer_to_a_bad_connect, core.gate.port, core.core_ca, trusted) == (
        b"\x20\x02\x00\x01"
    )
    assert await asyncio.to_thread(_answer_to_a_bad_connect, core.gate.port, core.core_ca, outsider) == b""
    # A revoked certificate of the right CA is refused the same way, by the CRL in the trust list.
    core.ca.revoke(trusted)
    await core.trust.accept(device_list(core.ca, core.devices))
    assert await asyncio.to_thread(_answer_to_a_bad_connect, core.gate.port, core.core_ca, trusted) == b""


async def test_a_device_dropped_from_the_trust_list_is_disconnected(
    core: Core, clients: list[Client]
) -> None:
    sensor = await asyncio.to_thread(core.device, "sensor-1")
    clients.append(sensor)
    await eventually(lambda: sensor.connack, what="the CONNACK")
    assert core.gate.connected_things() == ["sensor-1"]

    remaining = {name: credentials for name, credentials in core.devices.items() if name != "sensor-1"}
    await core.trust.accept(device_list(core.ca, remaining))
    core.gate.recheck()

    await eventually(sensor.disconnected.is_set, what="the sensor's disconnection")
    await eventually(lambda: core.gate.connected_things() == [], what="the gate to forget the sensor")


async def test_an_awsiotsdk_client_connects_through_the_gate_and_publishes(
    core: Core, clients: list[Client]
) -> None:
    from awscrt import mqtt
    from awsiot import mqtt_connection_builder

    observer = core.observer()
    clients.append(observer)
    await eventually(lambda: observer.connack, what="the observer's CONNACK")
    observer.client.subscribe("sensors/#", 1)
    await eventually(lambda: observer.subacks, what="the observer's SUBACK")
    credentials = core.devices["sensor-2"]
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=core.gate.port,
        cert_filepath=str(credentials.certificate),
        pri_key_filepath=str(credentials.private_key),
        ca_filepath=str(core.core_ca),
        client_id="sensor-2",
        clean_session=True,
        keep_alive_secs=30,
    )
    await asyncio.wrap_future(connection.connect())
    try:
        published, _ = connection.publish(
            topic="sensors/sensor-2/humidity", payload=b"40", qos=mqtt.QoS.AT_LEAST_ONCE
        )
        await asyncio.wrap_future(published)
        await eventually(lambda: "sensors/sensor-2/humidity" in observer.topics(), what="the SDK's message")
    finally:
        await asyncio.wrap_future(connection.disconnect())
