"""The MQTT bridge between real parts: a Mosquitto with a password file as the local broker ("LocalMqtt"), the
runtime's pub/sub bus ("Pubsub"), and a real cloud link to a second Mosquitto with mutual TLS ("IotCore")."""

from __future__ import annotations

import dataclasses
import getpass
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from tests.support.mosquitto import MOSQUITTO, Mosquitto, MqttClient
from tests.support.pki import CertificateAuthority
from tests.support.ports import free_port
from tests.support.waiting import eventually, wait_until

from edgewise.runtime.clientdevices.bridge import Bridge, BridgeStartupError, _Echoes
from edgewise.runtime.clientdevices.bridge_settings import BridgeSettings, parse_bridge_settings
from edgewise.runtime.clientdevices.broker import LocalBrokerAccess
from edgewise.runtime.clientdevices.names import BRIDGE
from edgewise.runtime.cloudlink import CloudLink, CloudLinkSettings, ReconnectSettings, SpoolSettings
from edgewise.runtime.pubsub import PubSubBus, PubSubMessage

BRIDGE_USER = "bridge"
BRIDGE_PASSWORD = "s3cret-bridge"
DEVICE_USER = "device"
DEVICE_PASSWORD = "s3cret-device"


class LocalBroker:
    """The "LocalMqtt" side: Mosquitto on loopback, plain TCP, logins from a password file, packets of 4 KiB."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = directory / "mosquitto.log"
        passwords = directory / "passwords"
        for user, password in ((BRIDGE_USER, BRIDGE_PASSWORD), (DEVICE_USER, DEVICE_PASSWORD)):
            create = ["-c"] if not passwords.exists() else []
            subprocess.run(["mosquitto_passwd", "-b", *create, str(passwords), user, password], check=True)
        passwords.chmod(0o600)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            "max_packet_size 4096",  # announced in CONNACK: the bridge must not send more
            f"password_file {passwords}",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(
            lambda: self.log.exists() and " running" in self.log.read_text()[offset:], what="local mosquitto"
        )

    def access(self) -> LocalBrokerAccess:
        return LocalBrokerAccess("127.0.0.1", self.port, BRIDGE_USER, BRIDGE_PASSWORD)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(10)


class LocalDevice:
    """A client device on the local broker (paho, MQTT 5) that records what it receives."""

    def __init__(self, broker: LocalBroker, name: str) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subacks: dict[int, Any] = {}
        connected = self.connected = threading.Event()
        client = self.paho = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5
        )
        client.username_pw_set(DEVICE_USER, DEVICE_PASSWORD)
        client.on_connect = lambda *args: connected.set()
        client.on_disconnect = lambda *args: connected.clear()
        client.reconnect_delay_set(1, 1)
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.connect("127.0.0.1", broker.port, keepalive=30)
        client.loop_start()
        assert connected.wait(10), "the local device did not connect"

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with self._lock:
            self._subacks[mid] = reasons

    def subscribe(self, topic_filter: str) -> None:
        _, mid = self.paho.subscribe(topic_filter, options=SubscribeOptions(qos=1, noLocal=True))
        assert mid is not None
        wait_until(lambda: self._subacks.get(mid), what=f"SUBACK for {topic_filter}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.paho.publish(topic, payload, 1, retain)

    def received(self, prefix: str = "") -> list[tuple[str, bytes]]:
        with self._lock:
            return [(m.topic, bytes(m.payload)) for m in self.messages if m.topic.startswith(prefix)]

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture(scope="module")
def local_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path_factory.mktemp("local-broker"))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def cloud_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def cloud_broker(
    tmp_path_factory: pytest.TempPathFactory, cloud_ca: CertificateAuthority
) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("cloud-broker"), cloud_ca) as running:
        yield running


@pytest.fixture
def core(request: pytest.FixtureRequest) -> str:
    """A name per test, so that client ids and topics of tests sharing the brokers never meet."""
    name: str = request.node.name
    return "core-" + name.removeprefix("test_")[:40].replace("_", "-")


@pytest.fixture
def cloud_settings(cloud_ca: CertificateAuthority, cloud_broker: Mosquitto, core: str) -> CloudLinkSettings:
    credentials = cloud_ca.issue(core)
    return CloudLinkSettings(
        endpoint="localhost",
        port=cloud_broker.port,
        certificate=credentials.certificate,
        private_key=credentials.private_key,
        root_ca=cloud_ca.certificate,
        keep_alive=10,
        reconnect=ReconnectSettings(min_delay=0.1, max_delay=0.5),
    )


@pytest.fixture
async def cloud(cloud_settings: CloudLinkSettings, core: str, tmp_path: Path) -> AsyncIterator[CloudLink]:
    async with CloudLink(cloud_settings, client_id=core, spool_dir=tmp_path / "spool") as link:
        await eventually(lambda: link.connected, what="the cloud link to connect")
        yield link


@pytest.fixture
def device(local_broker: LocalBroker, core: str) -> Iterator[LocalDevice]:
    client = LocalDevice(local_broker, f"{core}-device")
    yield client
    client.close()


@pytest.fixture
def cloud_observer(cloud_broker: Mosquitto, core: str) -> Iterator[MqttClient]:
    with cloud_broker.client(f"{core}-observer") as observer:
        yield observer


def _settings(core: str, mappings: dict[str, dict[str, str]]) -> BridgeSettings:
    return dataclasses.replace(
        parse_bridge_settings({"mqttTopicMapping": mappings}), client_id=f"{core}-bridge"
    )


class BusRecorder:
    """A component on the local bus that records what it hears."""

    def __init__(self, bus: PubSubBus, topic_filter: str) -> None:
        self.messages: list[PubSubMessage] = []
        bus.subscribe(topic_filter, self.messages.append, subscriber="com.example.Recorder")

    def received(self) -> list[tuple[str, object]]:
        return [(message.topic, message.payload) for message in self.messages]


async def test_client_device_messages_reach_the_cloud_and_the_bus_through_wildcards_and_prefixes(
    core: str, local_broker: LocalBroker, cloud: CloudLink, device: LocalDevice, cloud_observer: MqttClient
) -> None:
    bus = PubSubBus()
    heard = BusRecorder(bus, f"{core}/#")
    cloud_observer.subscribe(f"edge/{core}/#")
    settings = _settings(
        core,
        {
            "ToCloud": {"topic": f"{core}/+/temperature", "source": "LocalMqtt", "target": "IotCore",
                        "targetTopicPrefix": "edge/"},
            "ToBus": {"topic": f"{core}/#", "source": "LocalMqtt", "target": "Pubsub"},
        },
    )  # fmt: skip
    bridge = Bridge(settings, local=local_broker.access(), bus=bus, cloud=cloud)
    await bridge.start()
    try:
        device.publish(f"{core}/kitchen/humidity", b"55")
        device.publish(f"{core}/kitchen/temperature", b"21.5")

        await eventually(lambda: len(cloud_observer.received(f"edge/{core}/")) == 1, what="the cloud message")
        assert cloud_observer.payloads(f"edge/{core}/") == [b"21.5"]
        assert cloud_observer.received(f"edge/{core}/")[0].topic == f"edge/{core}/kitchen/temperature"
        await eventually(lambda: len(heard.messages) == 2, what="both messages on the bus")
        assert heard.received() == [
            (f"{core}/kitchen/humidity", b"55"),
            (f"{core}/kitchen/temperature", b"21.5"),
        ]
        assert heard.messages[0].source == BRIDGE
        assert bridge.statistics().forwarded == 3
        assert bridge.statistics().local_connected
    finally:
        await bridge.close()


async def test_cloud_messages_reach_client_devices_and_the_bus(
    core: str, local_broker: LocalBroker, cloud: CloudLink, device: LocalDevice, cloud_observer: MqttClient
) -> None:
    bus = PubSubBus()
    heard = BusRecorder(bus, "#")
    device.subscribe(f"$aws/things/{core}-device/shadow/#")
    settings = _settings(
        core,
        {
            "Shadows": {"topic": f"$aws/things/{core}-device/shadow/#", "source": "IotCore", "target": "LocalMqtt"},
            "ShadowsToBus": {"topic": f"$aws/things/{core}-device/shadow/#", "source": "IotCore",
                             "target": "Pubsub", "targetTopicPrefix": "cloud/"},
        },
    )  # fmt: skip
    bridge = Bridge(settings, local=local_broker.access(), bus=bus, cloud=cloud)
    await bridge.start()
    try:
        delta = f"$aws/things/{core}-device/shadow/update/delta"
        cloud_observer.publish(delta, b'{"state":{"on":true}}')

        await eventually(lambda: device.received() == [(delta, b'{"state":{"on":true}}')], what="the delta")
        await eventually(lambda: heard.received() == [(f"cloud/{delta}", b'{"state":{"on":true}}')])
    finally:
        await bridge.close()


async def test_component_messages_reach_client_devices_and_the_cloud(
    core: str, local_broker: LocalBroker, cloud: CloudLink, device: LocalDevice, cloud_observer: MqttClient
) -> None:
    bus = PubSubBus()
    device.subscribe(f"from-components/{core}/#")
    cloud_observer.subscribe(f"{core}/#")
    settings = _settings(
        core,
        {
            "ToDevices": {"topic": f"{core}/commands/+", "source": "Pubsub", "target": "LocalMqtt",
                          "targetTopicPrefix": "from-components/"},
            "ToCloud": {"topic": f"{core}/#", "source": "Pubsub", "target": "IotCore"},
        },
    )  # fmt: skip
    bridge = Bridge(settings, local=local_broker.access(), bus=bus, cloud=cloud)
    await bridge.start()
    try:
        bus.publish(f"{core}/commands/light", {"on": True}, source="com.example.Controller")
        bus.publish(f"{core}/telemetry", b"\x00\x01", source="com.example.Sensor")

        command = (f"from-components/{core}/commands/light", b'{"on":true}')
        await eventually(lambda: device.received() == [command], what="the command at the device")
        await eventually(lambda: len(cloud_observer.received(f"{core}/")) == 2, what="both at the cloud")
        assert sorted(cloud_observer.payloads(f"{core}/")) == [b"\x00\x01", b'{"on":true}']
    finally:
        await bridge.close()


async def test_mapping_pairs_in_both_directions_on_one_filter_do_not_loop(
    core: str, local_broker: LocalBroker, cloud: CloudLink, device: LocalDevice, cloud_observer: MqttClient
) -> None:
    bus = PubSubBus()
    heard = BusRecorder(bus, f"{core}/#")
    device.subscribe(f"{core}/#")
    cloud_observer.subscribe(f"{core}/#")
    settings = _settings(
        core,
        {
            "Up": {"topic": f"{core}/#", "source": "LocalMqtt", "target": "IotCore"},
            "Down": {"topic": f"{core}/#", "source": "IotCore", "target": "LocalMqtt"},
            "ToBus": {"topic": f"{core}/#", "source": "LocalMqtt", "target": "Pubsub"},
            "FromBus": {"topic": f"{core}/#", "source": "Pubsub", "target": "LocalMqtt"},
        },
    )
    bridge = Bridge(settings, local=local_broker.access(), bus=bus, cloud=cloud)
    await bridge.start()
    try:
        device.publish(f"{core}/from-device", b"1")
        cloud_observer.publish(f"{core}/from-cloud", b"2")
        bus.publish(f"{core}/from-component", b"3", source="com.example.Component")
        # Once the last message has gone all the way round, anything looping would have come back at least once.
        device.publish(f"{core}/sentinel", b"4")
        await eventually(
            lambda: (f"{core}/sentinel", b"4") in heard.received(), what="the sentinel on the bus"
        )
        await eventually(
            lambda: b"4" in cloud_observer.payloads(f"{core}/"), what="the sentinel in the cloud"
        )
        await eventually(lambda: bridge.statistics().echoes == 2, what="the cloud echoes of the bridge's own")
        await eventually(lambda: len(device.received()) >= 2, what="the messages for the device")

        assert sorted(cloud_observer.payloads(f"{core}/")) == [b"1", b"2", b"4"]
        assert sorted(device.received()) == [(f"{core}/from-cloud", b"2"), (f"{core}/from-component", b"3")]
        assert sorted(heard.received()) == [
            (f"{core}/from-component", b"3"),
            (f"{core}/from-device", b"1"),
            (f"{core}/sentinel", b"4"),
        ]
        # device -> cloud, bus; cloud -> device; component -> device; sentinel -> cloud, bus: nothing more.
        assert bridge.statistics().forwarded == 6
    finally:
        await bridge.close()


async def test_a_slow_side_drops_what_does_not_fit_and_counts_it(
    core: str, cloud: CloudLink, cloud_observer: MqttClient
) -> None:
    bus = PubSubBus()
    cloud_observer.subscribe(f"{core}/#")
    settings = _settings(core, {"Up": {"topic": f"{core}/#", "source": "Pubsub", "target": "IotCore"}})
    bridge = Bridge(settings, local=None, bus=bus, cloud=cloud, queue_size=2)
    await bridge.start()
    try:
        # The bus delivers synchronously: five messages before the bridge's sender runs once find room for two.
        for index in range(5):
            bus.publish(f"{core}/burst", str(index).encode(), source="com.example.Sensor")
        assert bridge.statistics().dropped == 3

        await eventually(
            lambda: len(cloud_observer.received(f"{core}/")) == 2, what="the two queued messages"
        )
        assert cloud_observer.payloads(f"{core}/") == [b"0", b"1"]
        assert bus.statistics().dropped == 3
    finally:
        await bridge.close()


async def test_a_qos1_burst_from_client_devices_waits_in_the_broker_instead_of_being_dropped(
    core: str, local_broker: LocalBroker, cloud: CloudLink, device: LocalDevice, cloud_observer: MqttClient
) -> None:
    # The device has each message acknowledged by the broker at once: dropping one in the bridge would lose it.
    cloud_observer.subscribe(f"{core}/#")
    settings = _settings(core, {"Up": {"topic": f"{core}/#", "source": "LocalMqtt", "target": "IotCore"}})
    bridge = Bridge(settings, local=local_broker.access(), bus=PubSubBus(), cloud=cloud, queue_size=4)
    await bridge.start()
    try:
        sent = [str(index).encode() for index in range(200)]
        for payload in sent:
            device.publish(f"{core}/burst", payload)

        await eventually(lambda: len(cloud_observer.received(f"{core}/")) >= 200, what="the whole burst")
        assert cloud_observer.payloads(f"{core}/") == sent
        assert bridge.statistics().dropped == 0
    finally:
        await bridge.close()


async def test_a_message_too_large_for_the_cloud_is_counted_and_the_next_one_still_goes(
    core: str, cloud_settings: CloudLinkSettings, tmp_path: Path, cloud_observer: MqttClient
) -> None:
    small_spool = dataclasses.replace(cloud_settings, spool=SpoolSettings(max_bytes=4096))
    bus = PubSubBus()
    cloud_observer.subscribe(f"{core}/#")
    settings = _settings(core, {"Up": {"topic": f"{core}/#", "source": "Pubsub", "target": "IotCore"}})
    async with CloudLink(small_spool, client_id=core, spool_dir=tmp_path / "small-spool") as link:
        bridge = Bridge(settings, local=None, bus=bus, cloud=link)
        await bridge.start()
        try:
            bus.publish(f"{core}/big", b"x" * 10_000, source="com.example.Camera")
            bus.publish(f"{core}/small", b"ok", source="com.example.Camera")

            await eventually(lambda: cloud_observer.payloads(f"{core}/") == [b"ok"], what="the small message")
            assert bridge.statistics().failed == 1
        finally:
            await bridge.close()


async def test_mappings_to_a_side_the_runtime_lacks_are_skipped(
    core: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = PubSubBus()
    settings = _settings(
        core,
        {
            "Up": {"topic": "a/#", "source": "LocalMqtt", "target": "IotCore"},
            "Local": {"topic": "b/#", "source": "LocalMqtt", "target": "Pubsub"},
        },
    )
    bridge = Bridge(settings, local=None, bus=bus, cloud=None)
    await bridge.start()
    await bridge.close()

    assert "mapping 'Up' (LocalMqtt -> IotCore) is skipped: no local broker is deployed" in caplog.text
    assert "mapping 'Local' (LocalMqtt -> Pubsub) is skipped" in caplog.text
    assert bus.statistics().subscriptions == 0


async def test_start_fails_when_the_local_broker_is_not_there_in_time(core: str) -> None:
    settings = dataclasses.replace(
        _settings(core, {"Down": {"topic": "a/#", "source": "Pubsub", "target": "LocalMqtt"}}),
        startup_timeout=1,
    )
    bus = PubSubBus()
    nothing_listens = LocalBrokerAccess("127.0.0.1", free_port(), BRIDGE_USER, BRIDGE_PASSWORD)
    bridge = Bridge(settings, local=nothing_listens, bus=bus, cloud=None)

    with pytest.raises(BridgeStartupError, match="startupTimeoutSeconds"):
        await bridge.start()
    assert bus.statistics().subscriptions == 0


def test_an_echo_is_recognised_once_per_message_sent_and_only_within_the_window() -> None:
    echoes = _Echoes(window=3600)
    echoes.expect("a/#", "a/1", b"x")
    echoes.expect("a/#", "a/1", b"x")

    assert not echoes.take("a/#", "a/2", b"x")  # another topic
    assert not echoes.take("a/#", "a/1", b"y")  # another payload
    assert not echoes.take("a/+", "a/1", b"x")  # heard on another filter
    assert echoes.take("a/#", "a/1", b"x")
    assert echoes.take("a/#", "a/1", b"x")
    assert not echoes.take("a/#", "a/1", b"x")  # two sent, two echoes: the third is a message of its own

    expired = _Echoes(window=0)
    expired.expect("a/#", "a/1", b"x")
    assert not expired.take("a/#", "a/1", b"x")


async def test_the_bridge_reconnects_to_a_restarted_local_broker_and_subscribes_again(
    core: str, tmp_path: Path
) -> None:
    broker = LocalBroker(tmp_path / "restarted-broker")
    device = LocalDevice(broker, f"{core}-device")
    bus = PubSubBus()
    heard = BusRecorder(bus, f"{core}/#")
    settings = _settings(core, {"ToBus": {"topic": f"{core}/#", "source": "LocalMqtt", "target": "Pubsub"}})
    bridge = Bridge(settings, local=broker.access(), bus=bus, cloud=None)
    await bridge.start()
    try:
        device.publish(f"{core}/before", b"1")
        await eventually(lambda: len(heard.messages) == 1, what="the message before the restart")

        broker.stop()
        await eventually(lambda: not bridge.statistics().local_connected, what="the bridge to notice")
        broker.start()  # without persistence: the broker forgot every subscription
        await eventually(lambda: bridge.statistics().local_connected, what="the bridge to reconnect")
        await eventually(device.connected.is_set, what="the device to reconnect")
        device.publish(f"{core}/after", b"2")

        await eventually(lambda: len(heard.messages) == 2, what="the message after the restart")
        assert heard.received() == [(f"{core}/before", b"1"), (f"{core}/after", b"2")]
    finally:
        await bridge.close()
        device.close()
        broker.stop()


async def test_the_retain_flag_is_forwarded_as_published_unless_the_route_options_say_otherwise(
    core: str,
    local_broker: LocalBroker,
    cloud: CloudLink,
    device: LocalDevice,
    cloud_broker: Mosquitto,
) -> None:
    configuration = {
        "mqttTopicMapping": {
            "Kept": {"topic": f"{core}/kept/#", "source": "LocalMqtt", "target": "IotCore"},
            "Cleared": {"topic": f"{core}/cleared/#", "source": "LocalMqtt", "target": "IotCore"},
        },
        "mqtt5RouteOptions": {"Cleared": {"retainAsPublished": False}},
    }
    settings = dataclasses.replace(parse_bridge_settings(configuration), client_id=f"{core}-bridge")
    bridge = Bridge(settings, local=local_broker.access(), bus=PubSubBus(), cloud=cloud)
    await bridge.start()
    try:
        device.publish(f"{core}/cleared/state", b"off", retain=True)
        device.publish(f"{core}/kept/state", b"on", retain=True)
        await eventually(lambda: bridge.statistics().forwarded == 2, what="both messages forwarded")
        await eventually(lambda: cloud.statistics().spooled == 0, what="both acknowledged by the cloud")

        # A subscriber arriving later gets only what the cloud retained.
        with cloud_broker.client(f"{core}-late") as late:
            late.subscribe(f"{core}/#")
            await eventually(lambda: late.payloads(f"{core}/") == [b"on"], what="the retained message")
    finally:
        await bridge.close()


async def test_a_message_larger_than_the_local_broker_takes_is_counted_and_the_bridge_stays_connected(
    core: str, local_broker: LocalBroker, cloud: CloudLink, device: LocalDevice, cloud_observer: MqttClient
) -> None:
    device.subscribe(f"{core}/#")
    settings = _settings(core, {"Down": {"topic": f"{core}/#", "source": "IotCore", "target": "LocalMqtt"}})
    bridge = Bridge(settings, local=local_broker.access(), bus=PubSubBus(), cloud=cloud)
    await bridge.start()
    try:
        cloud_observer.publish(f"{core}/big", b"x" * 5000)
        cloud_observer.publish(f"{core}/small", b"ok")

        await eventually(lambda: device.received() == [(f"{core}/small", b"ok")], what="the small message")
        assert bridge.statistics().failed == 1
        assert bridge.statistics().local_connected
        assert f"Client {core}-bridge disconnected" not in local_broker.log.read_text()
    finally:
        await bridge.close()
