"""The CA's certificates and CRL as a real Mosquitto 2 (OpenSSL) sees them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgewise.cloud.identity import CertificateAuthority
from tests.support.mosquitto import Mosquitto
from tests.support.pki import Credentials
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


class FileAuthority:
    """Our CA as the files Mosquitto and its clients read: the CA certificate, and certificates it signs."""

    def __init__(self, ca: CertificateAuthority, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = ca
        self.directory = directory
        self.certificate = directory / "ca.pem"
        self.certificate.write_text(ca.certificate_pem)

    def issue(self, common_name: str, *, server: bool = False) -> Credentials:
        if server:
            issued, key_pem = self.ca.server_certificate([common_name, "127.0.0.1"])
        else:
            issued, key_pem = self.ca.issue_with_new_key(common_name)
        certificate, key = self.directory / f"{common_name}.pem", self.directory / f"{common_name}.key"
        certificate.write_text(issued.certificate_pem)
        key.write_text(key_pem)
        return Credentials(certificate, key, self.certificate, issued.serial)


def connects(broker: Mosquitto, client_id: str, device: Credentials) -> bool:
    """Whether ``device`` gets a successful CONNACK (False once the broker refuses or drops it)."""
    outcome: list[bool] = []
    done = threading.Event()

    def on_connect(
        client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        outcome.append(not getattr(reason, "is_failure", True))
        done.set()

    def on_disconnect(client: paho.Client, *args: object) -> None:
        outcome.append(False)
        done.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.tls_set(str(broker.ca.certificate), str(device.certificate), str(device.private_key))
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect("localhost", broker.port, keepalive=30)
    except OSError:
        return False
    client.loop_start()
    try:
        assert done.wait(15), f"no CONNACK nor disconnect for {client_id}"
        return outcome[0]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Edgewise Test Root", valid_days=30)


@pytest.fixture
def crl(tmp_path: Path, ca: CertificateAuthority) -> Path:
    """The broker's revocation list, empty until a test rewrites it (the broker reads it when it starts)."""
    path = tmp_path / "crl.pem"
    path.write_text(ca.build_crl([]))
    return path


@pytest.fixture
def broker(tmp_path: Path, ca: CertificateAuthority, crl: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", FileAuthority(ca, tmp_path / "pki"), crl=crl) as running:
        yield running


def test_device_certificate_from_our_ca_connects_with_cn_as_user_name(broker: Mosquitto) -> None:
    assert connects(broker, "sensor-1", broker.ca.issue("sensor-1"))
    wait_until(lambda: "u'sensor-1'" in broker.log_text(), what="the CN as user name in the log")


def test_certificate_from_another_ca_is_refused(broker: Mosquitto, tmp_path: Path) -> None:
    stranger = CertificateAuthority.create("Edgewise Test Root", valid_days=30)
    assert not connects(broker, "sensor-1", FileAuthority(stranger, tmp_path / "stranger").issue("sensor-1"))


def test_revoked_and_held_certificates_are_refused_once_in_the_crl(
    broker: Mosquitto, ca: CertificateAuthority, crl: Path
) -> None:
    revoked, held, active = (broker.ca.issue(name) for name in ("revoked-1", "held-1", "active-1"))
    assert connects(broker, "revoked-1", revoked)

    crl.write_text(ca.build_crl([revoked.serial], held_serials=[held.serial]))
    broker.restart()

    assert not connects(broker, "revoked-1", revoked)
    assert not connects(broker, "held-1", held)
    assert connects(broker, "active-1", active)
