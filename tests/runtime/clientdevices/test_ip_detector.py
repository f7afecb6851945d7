"""The IP detector: which addresses it keeps, its configuration errors, and its reports reaching a cloud on a real
Mosquitto through a real cloud link, answered by a fake cloud that rejects the first one."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from tests.support.mosquitto import Mosquitto, MqttClient
from tests.support.pki import CertificateAuthority
from tests.support.waiting import eventually

from edgewise.protocol.client_devices import (
    THROTTLED,
    ClientDeviceRejection,
    ConnectivityAccepted,
    ConnectivityEntry,
    ConnectivityUpdate,
    build_connectivity_accepted,
    build_rejection,
    connectivity_reply_topic,
    connectivity_topic,
    parse_connectivity_update,
)
from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.ip_detector import (
    InterfaceAddress,
    IpDetector,
    IpDetectorSettings,
    host_addresses,
    parse_ip_detector_settings,
    select_addresses,
)
from edgewise.runtime.clientdevices.names import IP_DETECTOR
from edgewise.runtime.cloudlink import CloudLink, CloudLinkSettings, ReconnectSettings


def _address(text: str, interface: str = "eth0", *, up: bool = True) -> InterfaceAddress:
    return InterfaceAddress(interface, ipaddress.ip_address(text), up)


HOST = [
    _address("127.0.0.1", "lo"),
    _address("192.168.1.20"),
    _address("169.254.10.1"),
    _address("10.0.0.5", "wlan0"),
    _address("10.9.9.9", "docker0", up=False),
    _address("::1", "lo"),
    _address("fe80::1"),
    _address("2001:db8::5"),
    _address("192.168.1.20", "eth0"),
]


def test_greengrass_defaults_keep_ipv4_addresses_of_interfaces_that_are_up_without_loopback_and_link_local() -> (
    None
):
    assert select_addresses(HOST, IpDetectorSettings()) == ["192.168.1.20", "10.0.0.5"]


def test_each_kind_of_address_comes_with_its_own_setting() -> None:
    everything = IpDetectorSettings(
        include_ipv4_loopback=True,
        include_ipv4_link_local=True,
        include_ipv6=True,
        include_ipv6_loopback=True,
        include_ipv6_link_local=True,
    )
    assert select_addresses(HOST, everything) == [
        "127.0.0.1",
        "192.168.1.20",
        "169.254.10.1",
        "10.0.0.5",
        "::1",
        "fe80::1%eth0",
        "2001:db8::5",
    ]
    assert select_addresses(HOST, IpDetectorSettings(include_ipv4=False, include_ipv6=True)) == [
        "2001:db8::5"
    ]
    excluded = IpDetectorSettings(excluded=frozenset({ipaddress.ip_address("10.0.0.5")}))
    assert select_addresses(HOST, excluded) == ["192.168.1.20"]


def test_the_host_addresses_come_from_the_kernel() -> None:
    found = host_addresses()

    assert _address("127.0.0.1", "lo") in found
    assert "127.0.0.1" in select_addresses(found, IpDetectorSettings(include_ipv4_loopback=True))
    assert "127.0.0.1" not in select_addresses(found, IpDetectorSettings())


def test_greengrass_configuration_parses_with_strings_as_its_examples_write_them() -> None:
    parsed = parse_ip_detector_settings(
        {
            "includeIPv4LoopbackAddrs": "true",
            "includeIPv4LinkLocalAddrs": False,
            "defaultPort": "18883",
            "excludedIPAddresses": ["10.0.0.5", " 2001:db8::5 "],
        }
    )

    assert parsed == IpDetectorSettings(
        include_ipv4_loopback=True,
        default_port=18883,
        excluded=frozenset({ipaddress.ip_address("10.0.0.5"), ipaddress.ip_address("2001:db8::5")}),
    )
    assert parse_ip_detector_settings(None) == IpDetectorSettings()
    assert parse_ip_detector_settings({}).default_port == 8883


@pytest.mark.parametrize(
    ("configuration", "key", "problem"),
    [
        ("yes", "(the configuration)", "must be an object"),
        ({"includeIPv4LoopbackAddrs": "sometimes"}, "includeIPv4LoopbackAddrs", "true or false"),
        ({"includeIPv6Addrs": 1}, "includeIPv6Addrs", "true or false"),
        ({"defaultPort": 0}, "defaultPort", "from 1 to 65535"),
        ({"defaultPort": "eighty"}, "defaultPort", "port number"),
        ({"defaultPort": True}, "defaultPort", "port number"),
        ({"excludedIPAddresses": "10.0.0.5"}, "excludedIPAddresses", "must be a list"),
        ({"excludedIPAddresses": ["10.0.0.5", "router"]}, "excludedIPAddresses[1]", "must be an IP address"),
        ({"excludedIPAddresses": [167772165]}, "excludedIPAddresses[0]", "must be an IP address"),
        ({"includeIpv4LoopbackAddrs": True}, "includeIpv4LoopbackAddrs", "is not supported"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(configuration: Any, key: str, problem: str) -> None:
    with pytest.raises(ClientDeviceConfigurationError) as caught:
        parse_ip_detector_settings(configuration)

    assert caught.value.component == IP_DETECTOR
    assert caught.value.key == key
    assert problem in caught.value.problem


def _more_than(items: list[None], count: int) -> bool:
    return len(items) > count


class FakeCloud:
    """Answers connectivity updates of ``core`` on the broker the way the cloud does: the first with a
    ``Throttled`` rejection, the next ones accepted with versions 1, 2, ..."""

    def __init__(self, observer: MqttClient, core: str) -> None:
        self.core = core
        self.updates: list[ConnectivityUpdate] = []
        self._lock = threading.Lock()
        observer.paho.on_message = self._on_message
        observer.subscribe(connectivity_topic(core))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        update = parse_connectivity_update(bytes(message.payload))
        with self._lock:
            self.updates.append(update)
            count = len(self.updates)
        if count == 1:
            reply = build_rejection(ClientDeviceRejection(update.client_token, THROTTLED, "slow down"))
            client.publish(connectivity_reply_topic(self.core, "rejected"), reply, 1)
        else:
            accepted = build_connectivity_accepted(ConnectivityAccepted(update.client_token, count - 1))
            client.publish(connectivity_reply_topic(self.core, "accepted"), accepted, 1)

    def reported(self) -> list[list[str]]:
        with self._lock:
            return [[entry.host_address for entry in update.connectivity_info] for update in self.updates]


@pytest.fixture
def cloud_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, CertificateAuthority]]:
    ca = CertificateAuthority(tmp_path / "pki")
    with Mosquitto(tmp_path / "broker", ca) as running:
        yield running, ca


async def test_a_changed_address_set_is_reported_again_until_the_cloud_accepts_it(
    cloud_broker: tuple[Mosquitto, CertificateAuthority], tmp_path: Path
) -> None:
    broker, ca = cloud_broker
    core = "core-ip"
    credentials = ca.issue(core)
    settings = CloudLinkSettings(
        endpoint="localhost",
        port=broker.port,
        certificate=credentials.certificate,
        private_key=credentials.private_key,
        root_ca=ca.certificate,
        reconnect=ReconnectSettings(min_delay=0.1, max_delay=0.5),
    )
    host = [_address("127.0.0.1", "lo"), _address("192.168.1.20")]
    changes: list[list[ConnectivityEntry]] = []
    looks: list[None] = []

    def addresses() -> list[InterfaceAddress]:
        looks.append(None)
        return list(host)

    with broker.client("cloud-service") as observer:
        cloud = FakeCloud(observer, core)
        async with CloudLink(settings, client_id=core, spool_dir=tmp_path / "spool") as link:
            detector = IpDetector(
                parse_ip_detector_settings({"defaultPort": 8443}),
                cloud=link,
                thing=core,
                on_change=changes.append,
                interval=3600,
                retry_delay=0.05,
                addresses=addresses,
            )
            await detector.start()
            try:
                await eventually(lambda: detector.version == 1, what="the report accepted after a rejection")
                assert cloud.reported() == [["192.168.1.20"], ["192.168.1.20"]]
                assert cloud.updates[0].client_token != cloud.updates[1].client_token
                assert changes == [[ConnectivityEntry("192.168.1.20", "192.168.1.20", 8443, "")]]

                host.append(_address("10.0.0.5", "wlan0"))
                detector.check_now()
                await eventually(lambda: detector.version == 2, what="the new address set accepted")
                assert cloud.reported()[-1] == ["192.168.1.20", "10.0.0.5"]
                assert [entry.host_address for entry in changes[-1]] == ["192.168.1.20", "10.0.0.5"]

                # Nothing changed, or only an address seen again on another interface: nothing is reported. Two
                # rounds, since the second starts only once the first (and any report it made) is over.
                host.append(_address("192.168.1.20", "eth1"))
                for _ in range(2):
                    looked = len(looks)
                    detector.check_now()
                    await eventually(partial(_more_than, looks, looked), what="another look at the addresses")
                assert len(cloud.reported()) == 3
                assert len(changes) == 2
            finally:
                await detector.close()


def test_a_deployment_with_a_bad_ip_detector_value_is_refused_naming_the_key() -> None:
    from edgewise.aws_components import BUILTIN_VERSIONS
    from edgewise.protocol.deployment import ConfigurationUpdate
    from edgewise.runtime.deployment.document import DeploymentDocument
    from edgewise.runtime.deployment.errors import DeploymentError
    from edgewise.runtime.deployment.plan import plan_services
    from edgewise.runtime.deployment.resolution import resolve

    roots = {IP_DETECTOR: BUILTIN_VERSIONS[IP_DETECTOR]}
    resolution = resolve(roots, {}, builtins=BUILTIN_VERSIONS)
    document = DeploymentDocument(
        "d-1",
        components_to_add=roots,
        configuration={IP_DETECTOR: ConfigurationUpdate(merge={"defaultPort": 0})},
    )

    with pytest.raises(DeploymentError) as caught:
        plan_services(
            {}, resolution, document, roots=roots, platform={"os": "linux", "architecture": "amd64"}
        )
    assert f"{IP_DETECTOR} configuration defaultPort must be a port number" in str(caught.value)
