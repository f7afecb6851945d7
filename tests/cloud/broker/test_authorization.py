"""What a device may do through the managed Mosquitto: its own topics yes, anything of another device no.

A refused publish or delivery shows as a silence, so each test sends a marker after the forbidden message
(acknowledged first, so it is ordered after it) and checks the marker arrived and the forbidden one did not.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
from tests.cloud.broker.clients import TestClient, try_connect
from tests.support.pki import CertificateAuthority
from tests.support.waiting import wait_until

from edgewise.cloud.broker import MosquittoBroker

DeviceFactory = Callable[..., TestClient]


async def test_device_uses_its_own_shadow_and_data_topics(device: DeviceFactory) -> None:
    client = device("A")
    client.subscribe("$aws/things/A/shadow/#", "dt/A/#")
    client.publish("$aws/things/A/shadow/update", b"{}")
    client.publish("dt/A/telemetry", b"1")
    client.wait_for("$aws/things/A/shadow/update")
    client.wait_for("dt/A/telemetry")


async def test_publish_to_another_devices_topics_reaches_nobody(
    device: DeviceFactory, observer: TestClient
) -> None:
    client = device("A")
    client.publish("dt/B/telemetry")
    client.publish("$aws/things/B/shadow/update")
    client.publish("dt/A/marker")
    observer.wait_for("dt/A/marker")
    assert observer.topics() == ["dt/A/marker"]


async def test_subscription_reaching_another_device_delivers_none_of_its_messages(
    device: DeviceFactory, observer: TestClient
) -> None:
    b = device("B")
    b.publish("$aws/things/B/shadow/name/config/update", b"retained", retain=True)
    a = device("A")
    # Mosquitto 2.0.11's ACL file grants every SUBSCRIBE and filters each delivery by the read rights.
    a.subscribe("$aws/things/B/#", "$aws/things/+/shadow/#", "dt/#", "#")
    b.publish("$aws/things/B/shadow/update")
    b.publish("dt/B/telemetry")
    a.publish("$aws/things/A/shadow/update")
    a.wait_for("$aws/things/A/shadow/update")
    observer.wait_for("dt/B/telemetry")
    assert a.topics() == ["$aws/things/A/shadow/update"]


# paho-mqtt does not close its TLS socket when the handshake fails (``Client._ssl_wrap_socket``): the garbage
# collector does, with a ResourceWarning. Collected here, under this mark, so that it is neither hidden elsewhere
# nor blamed on a later test.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
async def test_certificate_from_another_ca_is_refused(broker: MosquittoBroker) -> None:
    stranger = CertificateAuthority(broker.settings.data_dir.parent / "other-ca")
    assert not try_connect(broker.settings.devices.port, "A", stranger.issue("A"))
    gc.collect()


async def test_client_id_is_replaced_by_the_certificates_thing_name(device: DeviceFactory) -> None:
    b = device("B")
    a = device("A")
    # With A's certificate, asking for B's client id neither takes B over nor gains B's rights.
    impostor = device("A", client_id="B")
    wait_until(lambda: not a.connected, what="A's first connection to be taken over by the same id")
    assert b.connected
    impostor.subscribe("$aws/things/B/#", "dt/A/#")
    b.publish("$aws/things/B/shadow/update")
    impostor.publish("dt/A/marker")
    impostor.wait_for("dt/A/marker")
    assert "$aws/things/B/shadow/update" not in impostor.topics()


async def test_client_id_with_slash_or_wildcard_gets_the_certificates_name(device: DeviceFactory) -> None:
    connections = [device("A")]
    for dangerous in ("A/evil", "A+", "#"):
        previous = connections[-1]
        connections.append(device("A", client_id=dangerous))
        wait_until(lambda: not previous.connected, what=f"client id {dangerous!r} to be replaced by 'A'")  # noqa: B023
    a = connections[-1]
    a.subscribe("dt/A/#")
    a.publish("dt/A/works")
    a.wait_for("dt/A/works")


async def test_certificate_whose_name_is_not_a_thing_gets_no_topic(
    device: DeviceFactory, authority: CertificateAuthority, observer: TestClient
) -> None:
    strangers = [device(name, identity=authority.issue(name)) for name in ("evil/A", "evil+", "#")]
    for stranger in strangers:
        stranger.subscribe("#")
        stranger.publish("dt/A/telemetry")
    a = device("A")
    a.publish("dt/A/marker")
    observer.wait_for("dt/A/marker")
    assert observer.topics() == ["dt/A/marker"]
    assert [stranger.topics() for stranger in strangers] == [[], [], []]


async def test_worker_listener_refuses_a_wrong_password(broker: MosquittoBroker) -> None:
    workers = broker.settings.workers
    assert workers is not None
    with TestClient(workers.port, "intruder", credentials=(workers.username, "not-the-password")) as client:
        assert not client.start()
