"""The CA's certificates and CRL as a real Mosquitto 2 (OpenSSL) sees them."""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgewise.cloud.identity import CertificateAuthority, IssuedCertificate
from tests.support.mosquitto import MOSQUITTO
from tests.support.ports import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Device:
    issued: IssuedCertificate
    certificate: Path
    key: Path


class Broker:
    """Mosquitto with mTLS against our CA, the CRL in ``crlfile``, and the CN as user name."""

    def __init__(self, directory: Path, ca: CertificateAuthority) -> None:
        self.directory = directory
        self.ca = ca
        self.port = free_port()
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_text(ca.certificate_pem)
        server, server_key = ca.server_certificate(["localhost", "127.0.0.1"])
        (directory / "server.pem").write_text(server.certificate_pem)
        (directory / "server.key").write_text(server_key)
        self.crl = directory / "crl.pem"
        self.crl.write_text(ca.build_crl([]))
        self.log = directory / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"cafile {self.ca_file}",
            f"certfile {directory / 'server.pem'}",
            f"keyfile {directory / 'server.key'}",
            f"crlfile {self.crl}",
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def running() -> bool:
            assert self.process is not None
            text = self.log.read_text(errors="replace")[offset:] if self.log.exists() else ""
            if self.process.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.process.returncode}: {text[-2000:]}")
            return " running" in text

        wait_until(running, timeout=20, what="mosquitto to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def device(self, ca: CertificateAuthority, name: str) -> Device:
        issued, key_pem = ca.issue_with_new_key(name)
        certificate, key = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        certificate.write_text(issued.certificate_pem)
        key.write_text(key_pem)
        return Device(issued, certificate, key)

    def connects(self, device: Device) -> bool:
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
            CallbackAPIVersion.VERSION2,
            client_id=device.issued.common_name,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.tls_set(str(self.ca_file), str(device.certificate), str(device.key))
        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        try:
            client.connect("localhost", self.port, keepalive=30)
        except OSError:
            return False
        client.loop_start()
        try:
            assert done.wait(15), f"no CONNACK nor disconnect for {device.issued.common_name}"
            return outcome[0]
        finally:
            client.disconnect()
            client.loop_stop()


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Edgewise Test Root", valid_days=30)


@pytest.fixture
def broker(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Broker]:
    running = Broker(tmp_path, ca)
    running.start()
    yield running
    running.stop()


def test_device_certificate_from_our_ca_connects_with_cn_as_user_name(
    broker: Broker, ca: CertificateAuthority
) -> None:
    device = broker.device(ca, "sensor-1")
    assert broker.connects(device)
    wait_until(
        lambda: "u'sensor-1'" in broker.log.read_text(errors="replace"), what="the CN as user name in the log"
    )


def test_certificate_from_another_ca_is_refused(broker: Broker) -> None:
    stranger = CertificateAuthority.create("Edgewise Test Root", valid_days=30)
    assert not broker.connects(broker.device(stranger, "sensor-1"))


def test_revoked_and_held_certificates_are_refused_once_in_the_crl(
    broker: Broker, ca: CertificateAuthority
) -> None:
    revoked, held, active = (broker.device(ca, name) for name in ("revoked-1", "held-1", "active-1"))
    assert broker.connects(revoked)

    broker.crl.write_text(ca.build_crl([revoked.issued.serial], held_serials=[held.issued.serial]))
    broker.stop()
    broker.start()

    assert not broker.connects(revoked)
    assert not broker.connects(held)
    assert broker.connects(active)
