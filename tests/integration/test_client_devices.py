"""Client devices behind a core device, end to end with nothing faked.

A real ``edgewise cloud up`` and a real runtime enrolled to it as the core device (``edgewise device bootstrap``).
The client devices are things with certificates of the cloud's CA, associated with the core with ``edgewise
core-device associate``. A local deployment in Greengrass's keys gives the core ``aws.greengrass.clientdevices.Auth``
(one device group selecting ``sensor-*``, its policy), ``mqtt.Moquette`` on a free port, ``mqtt.Bridge`` (the
clients' topics to the cloud under the core's telemetry prefix, the client's shadow both ways) and ``IPDetector``
(loopback included, so that discovery hands out an address the core's server certificate covers).

The client side is the awsiotsdk only, as AWS's ``basic_discovery.py`` sample uses it: ``DiscoveryClient`` on the
cloud's mutual-TLS listener gives the core's addresses and CA, and ``mqtt_connection_builder.mtls_from_path``
connects to the core's broker with them. What reaches the cloud is read back from its telemetry store and its
shadow API; a desired change is made with ``edgewise shadow update``.

One cloud, one core and one connected sensor serve the module; the bad deployments come last and check that the
core still serves the sensor afterwards.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from awscrt import io, mqtt, mqtt5
from awsiot import mqtt5_client_builder, mqtt_connection_builder
from awsiot.greengrass_discovery import DiscoverResponse, DiscoveryClient, DiscoveryException
from cryptography import x509
from typer.testing import CliRunner

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.cli.main import app
from edgewise.runtime.clientdevices.names import AUTH, BRIDGE, IP_DETECTOR, MOQUETTE
from tests.support.cloud_process import CloudProcess
from tests.support.pki import CertificateAuthority, Credentials
from tests.support.ports import free_port
from tests.support.runtime_process import RuntimeProcess
from tests.support.telemetry_cloud import enroll_device, stored_messages
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CORE = "cd-core"
SENSOR = "sensor-1"
#: Associated with the core, so trusted and discoverable, but selected by no device group.
OUTSIDER = "probe-1"
THING_VARIABLE = "${iot:Connection.Thing.ThingName}"
#: Where the bridge puts the clients' topics in the cloud: under the core's own telemetry topics.
CLOUD_PREFIX = f"dt/{CORE}/"
TELEMETRY = f"clients/{SENSOR}/temperature"
FORBIDDEN = f"clients/{SENSOR}/secret"
SHADOW = f"$aws/things/{SENSOR}/shadow"
DEADLINE = 20.0


def auth_configuration() -> dict[str, Any]:
    """Sensors may connect with their thing name, publish their temperature and use their own shadow."""
    own_shadow = f"$aws/things/{THING_VARIABLE}/shadow/*"
    return {
        "deviceGroups": {
            "formatVersion": "2021-03-05",
            "definitions": {
                "Sensors": {"selectionRule": "thingName: sensor-*", "policyName": "SensorPolicy"}
            },
            "policies": {
                "SensorPolicy": {
                    "AllowConnect": {
                        "operations": ["mqtt:connect"],
                        "resources": [f"mqtt:clientId:{THING_VARIABLE}"],
                    },
                    "AllowTelemetry": {
                        "operations": ["mqtt:publish"],
                        "resources": [f"mqtt:topic:clients/{THING_VARIABLE}/temperature"],
                    },
                    "AllowShadow": {
                        "operations": ["mqtt:publish", "mqtt:subscribe"],
                        "resources": [f"mqtt:topic:{own_shadow}", f"mqtt:topicfilter:{own_shadow}"],
                    },
                }
            },
        }
    }


def bridge_configuration() -> dict[str, Any]:
    return {
        "mqttTopicMapping": {
            "ClientTelemetry": {
                "topic": "clients/#",
                "source": "LocalMqtt",
                "target": "IotCore",
                "targetTopicPrefix": CLOUD_PREFIX,
            },
            "ShadowDelta": {"topic": f"{SHADOW}/update/delta", "source": "IotCore", "target": "LocalMqtt"},
            "ShadowUpdate": {"topic": f"{SHADOW}/update", "source": "LocalMqtt", "target": "IotCore"},
        }
    }


def cli(cloud: CloudProcess, *args: str) -> str:
    """One ``edgewise`` command against the cloud's API that must succeed; its output."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": cloud.admin_token, "EDGEWISE_API_URL": None}
    result = CliRunner().invoke(app, [*args, "--api", cloud.api_url], env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def bootstrap(cloud: CloudProcess, thing: str, directory: Path) -> Credentials:
    """A client device: a thing with a certificate of the cloud's CA; its files."""
    cli(
        cloud, "device", "bootstrap", "--thing", thing, "--out", str(directory), "--data", str(cloud.data_dir)
    )
    return Credentials(
        directory / "device.pem.crt", directory / "private.pem.key", directory / "root-ca.pem", 0
    )


def deploy(runtime: RuntimeProcess, recipes: Path, configurations: dict[str, Any]) -> dict[str, Any]:
    """A local deployment of the named built-ins, each with its configuration merged; its final status."""
    deployment = runtime.deploy(
        recipes,
        rootComponentVersionsToAdd={name: BUILTIN_VERSIONS[name] for name in configurations},
        componentToConfiguration={name: {"MERGE": body} for name, body in configurations.items()},
    )
    return runtime.wait_deployment(deployment)


def discover(cloud: CloudProcess, credentials: Credentials, thing: str) -> DiscoverResponse:
    """What AWS's basic_discovery sample does first: discovery over mutual TLS with the device's certificate."""
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


@dataclass
class Received:
    """Messages a client device received, by topic."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, topic: str, payload: bytes, **_: Any) -> None:
        with self.lock:
            self.messages.append((topic, payload))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [payload for each, payload in self.messages if each == topic]


def connection(credentials: Credentials, thing: str, host: str, port: int, ca: str) -> mqtt.Connection:
    """The sample's connection to a core device's broker (MQTT 3.1.1 over mutual TLS), not yet connected."""
    return mqtt_connection_builder.mtls_from_path(
        endpoint=host,
        port=port,
        cert_filepath=str(credentials.certificate),
        pri_key_filepath=str(credentials.private_key),
        ca_bytes=ca.encode(),
        client_id=thing,
        clean_session=True,
        keep_alive_secs=30,
    )


def connect_first(
    credentials: Credentials, thing: str, found: DiscoverResponse, failures: list[BaseException]
) -> tuple[mqtt.Connection, tuple[str, int]] | None:
    """The sample's loop: the first address of a discovered core that takes the connection (None when none
    does; why each refused is added to ``failures``)."""
    for group in found.gg_groups:
        for core in group.cores:
            for info in core.connectivity:
                client = connection(
                    credentials, thing, info.host_address, info.port, group.certificate_authorities[0]
                )
                try:
                    client.connect().result(DEADLINE)
                except Exception as error:
                    failures.append(error)
                    continue
                return client, (info.host_address, info.port)
    return None


def refusal(client: mqtt.Connection) -> BaseException:
    """The error a connection attempt ends with (it must not succeed)."""
    future = client.connect()
    try:
        future.result(DEADLINE)
    except Exception as error:
        return error
    client.disconnect().result(DEADLINE)
    raise AssertionError("the connection was accepted")


@dataclass
class World:
    cloud: CloudProcess
    runtime: RuntimeProcess
    recipes: Path
    port: int
    devices: dict[str, Credentials]
    discovered: DiscoverResponse
    sensor: mqtt.Connection
    sensor_address: tuple[str, int]
    received: Received


def ready_discovery(cloud: CloudProcess, credentials: Credentials, port: int) -> DiscoverResponse | None:
    """Discovery's answer once the core has reported its CA and an address on the broker's port."""
    try:
        found = discover(cloud, credentials, SENSOR)
    except DiscoveryException:
        return None
    [group] = found.gg_groups
    addresses = [(info.host_address, info.port) for core in group.cores for info in core.connectivity]
    return found if group.certificate_authorities and ("127.0.0.1", port) in addresses else None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("client-devices")
    with CloudProcess(tmp / "data") as cloud:
        cloud.wait_ready()
        config = enroll_device(cloud, CORE, tmp / "core")
        devices = {thing: bootstrap(cloud, thing, tmp / thing) for thing in (SENSOR, OUTSIDER)}
        associated = cli(cloud, "core-device", "associate", CORE, SENSOR, OUTSIDER)
        assert f"Associated {SENSOR}, {OUTSIDER} with {CORE}" in associated
        acl = cloud.data_dir / "broker" / "devices.acl"
        # The bridge subscribes to the client's shadow in the cloud: the core's ACL must grant it first.
        wait_until(
            lambda: f"topic readwrite {SHADOW}/#" in acl.read_text(), what="the client's shadow in the ACL"
        )
        runtime = RuntimeProcess(tmp / "root", "--thing-name", CORE, "--config", str(config)).start()
        try:
            recipes = tmp / "recipes"
            recipes.mkdir()
            port = free_port()
            deployed = deploy(
                runtime,
                recipes,
                {
                    AUTH: auth_configuration(),
                    MOQUETTE: {"moquette": {"ssl_port": port}},
                    BRIDGE: bridge_configuration(),
                    IP_DETECTOR: {"includeIPv4LoopbackAddrs": True, "defaultPort": port},
                },
            )
            assert deployed["status"] == "SUCCEEDED", deployed
            discovered = wait_until(
                lambda: ready_discovery(cloud, devices[SENSOR], port),
                timeout=DEADLINE,
                interval=0.1,
                what="discovery to give the core's CA and address",
            )
            assert discovered is not None
            # Like a device in the field, the sensor tries again until the core has its first trust list.
            failures: list[BaseException] = []
            try:
                taken = wait_until(
                    lambda: connect_first(devices[SENSOR], SENSOR, discovered, failures),
                    timeout=DEADLINE,
                    interval=0.1,
                    what="the core's broker to take the sensor",
                )
            except AssertionError as error:
                raise AssertionError(f"{error}; the last refusals: {failures[-3:]}") from None
            assert taken is not None
            sensor, address = taken
            received = Received()
            try:
                sensor.subscribe(f"{SHADOW}/update/delta", mqtt.QoS.AT_LEAST_ONCE, received)[0].result(
                    DEADLINE
                )
                yield World(cloud, runtime, recipes, port, devices, discovered, sensor, address, received)
            finally:
                sensor.disconnect().result(DEADLINE)
        finally:
            runtime.stop()


def cloud_payloads(world: World, topic: str) -> list[bytes]:
    """What the cloud stored from a client's ``topic`` (bridged under the core's telemetry prefix)."""
    return [message["payload"] for message in stored_messages(world.cloud, CORE, CLOUD_PREFIX + topic)]


def send_telemetry(world: World, reading: dict[str, Any]) -> bytes:
    """Publish ``reading`` (with a fresh marker) as the sensor's temperature and wait for the cloud to store it."""
    payload = json.dumps({**reading, "marker": uuid.uuid4().hex}).encode()
    world.sensor.publish(TELEMETRY, payload, mqtt.QoS.AT_LEAST_ONCE)[0].result(DEADLINE)
    wait_until(
        lambda: payload in cloud_payloads(world, TELEMETRY),
        timeout=DEADLINE,
        interval=0.1,
        what="the reading in the cloud's telemetry",
    )
    return payload


def test_discovery_hands_out_the_core_address_and_local_ca(world: World) -> None:
    [group] = world.discovered.gg_groups
    assert group.gg_group_id == f"greengrassV2-coreDevice-{CORE}"
    [core] = group.cores
    assert core.thing_arn.endswith(f":thing/{CORE}")
    [authority] = [x509.load_pem_x509_certificate(pem.encode()) for pem in group.certificate_authorities]
    constraints = authority.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    # The sensor's connection checked the broker's certificate against that CA, at a discovered address.
    assert world.sensor_address[1] == world.port


def test_a_client_device_message_reaches_the_cloud_through_the_bridge(world: World) -> None:
    payload = send_telemetry(world, {"celsius": 21.5})

    assert cloud_payloads(world, TELEMETRY).count(payload) == 1


def test_a_desired_change_in_the_cloud_reaches_the_client_device_as_a_delta(world: World) -> None:
    cli(world.cloud, "shadow", "update", SENSOR, "--desired", json.dumps({"led": "on"}))

    deltas = wait_until(
        lambda: world.received.on(f"{SHADOW}/update/delta"),
        timeout=DEADLINE,
        what="the delta at the client device",
    )
    assert json.loads(deltas[0])["state"] == {"led": "on"}

    # The device reports back through the bridge; the cloud's shadow holds the report.
    report = {"state": {"reported": {"led": "on"}}}
    world.sensor.publish(f"{SHADOW}/update", json.dumps(report).encode(), mqtt.QoS.AT_LEAST_ONCE)[0].result(
        DEADLINE
    )

    def reported() -> dict[str, Any] | None:
        with world.cloud.api(world.cloud.admin_token) as api:
            document: dict[str, Any] = api.get(f"/things/{SENSOR}/shadow").json()
        return document if document["state"].get("reported") == {"led": "on"} else None

    document = wait_until(reported, timeout=DEADLINE, interval=0.1, what="the report in the cloud's shadow")
    assert document is not None
    assert "delta" not in document["state"]


def test_a_topic_the_policy_forbids_is_enforced(world: World) -> None:
    # The sensor may not receive clients/#: its broker either refuses the subscription or delivers nothing of it
    # (Mosquitto grants the SUBACK and applies the ACL to each message it would deliver).
    with contextlib.suppress(mqtt.SubscribeError):
        world.sensor.subscribe("clients/#", mqtt.QoS.AT_LEAST_ONCE, world.received)[0].result(DEADLINE)
    secret = json.dumps({"marker": uuid.uuid4().hex}).encode()
    world.sensor.publish(FORBIDDEN, secret, mqtt.QoS.AT_LEAST_ONCE)[0].result(DEADLINE)
    # Sent after the forbidden one on the same connection and bridge mapping: once it is stored, the other would be.
    allowed = send_telemetry(world, {"celsius": 22.0})

    assert cloud_payloads(world, FORBIDDEN) == []
    # The broker delivers to the sensor at the latest when it delivers to the bridge, long before the cloud stores it.
    assert world.received.on(TELEMETRY) == []
    assert allowed in cloud_payloads(world, TELEMETRY)


def mqtt5_refusal(credentials: Credentials, thing: str, host: str, port: int, ca: str) -> mqtt5.ConnackPacket:
    """The CONNACK refusing an MQTT 5 connection of the awsiotsdk's client (its MQTT 3 connection reports a refused
    CONNACK as a protocol error, without the return code)."""
    outcome: Future[mqtt5.ConnackPacket | None] = Future()

    def failed(data: mqtt5.LifecycleConnectFailureData) -> None:
        if not outcome.done():
            outcome.set_result(data.connack_packet)

    def succeeded(_: mqtt5.LifecycleConnectSuccessData) -> None:
        if not outcome.done():
            outcome.set_exception(AssertionError(f"the broker took {thing}'s connection"))

    client = mqtt5_client_builder.mtls_from_path(
        endpoint=host,
        port=port,
        cert_filepath=str(credentials.certificate),
        pri_key_filepath=str(credentials.private_key),
        ca_bytes=ca.encode(),
        client_id=thing,
        on_lifecycle_connection_failure=failed,
        on_lifecycle_connection_success=succeeded,
    )
    client.start()
    try:
        connack = outcome.result(DEADLINE)
    finally:
        client.stop()
    assert connack is not None, "the connection ended before a CONNACK"
    return connack


def test_a_client_device_in_no_device_group_is_refused(world: World) -> None:
    credentials = world.devices[OUTSIDER]
    # It is associated with the core, so discovery answers it and the core trusts its certificate.
    [group] = discover(world.cloud, credentials, OUTSIDER).gg_groups
    host, port = world.sensor_address

    connack = mqtt5_refusal(credentials, OUTSIDER, host, port, group.certificate_authorities[0])

    assert connack.reason_code == mqtt5.ConnectReasonCode.NOT_AUTHORIZED
    # The MQTT 3.1.1 connection of the discovery sample is refused too.
    refusal(connection(credentials, OUTSIDER, host, port, group.certificate_authorities[0]))


def test_a_certificate_from_another_ca_is_refused_at_tls(world: World, tmp_path: Path) -> None:
    # The sensor's own thing name and the core's CA: only the certificate's issuer is wrong.
    stranger = CertificateAuthority(tmp_path / "other-ca", "Not The Edgewise CA").issue(SENSOR)
    host, port = world.sensor_address
    ca = world.discovered.gg_groups[0].certificate_authorities[0]
    handshakes = world.runtime.paths.runtime_log.read_text().count("TLS handshake with")

    refused = refusal(connection(stranger, SENSOR, host, port, ca))

    assert not isinstance(refused.args[0] if refused.args else None, mqtt.ConnectReturnCode)
    wait_until(
        lambda: world.runtime.paths.runtime_log.read_text().count("TLS handshake with") > handshakes,
        timeout=DEADLINE,
        what="the core to log the failed handshake",
    )


@pytest.mark.parametrize(
    ("component", "configuration", "field_name"),
    [
        (
            BRIDGE,
            {"mqttTopicMapping": {"Broken": {"topic": "clients/#", "source": "Shadow", "target": "IotCore"}}},
            "mqttTopicMapping.Broken.source",
        ),
        (
            AUTH,
            {
                "deviceGroups": {
                    "definitions": {
                        "Broken": {"selectionRule": "thingName sensor-*", "policyName": "SensorPolicy"}
                    }
                }
            },
            "deviceGroups.definitions.Broken.selectionRule",
        ),
    ],
    ids=["bridge-mapping", "selection-rule"],
)
def test_a_malformed_configuration_fails_the_deployment_naming_the_field(
    world: World, component: str, configuration: dict[str, Any], field_name: str
) -> None:
    deployment = deploy(world.runtime, world.recipes, {component: configuration})

    assert deployment["status"] == "FAILED"
    assert field_name in json.dumps(deployment)
    # Nothing changed: the sensor still reaches the cloud through the bridge.
    send_telemetry(world, {"celsius": 23.0})
