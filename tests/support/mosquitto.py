"""A real Mosquitto 2 for tests: mutual TLS with certificates made here, on a free port, restartable.

Usage::

    ca = CertificateAuthority(tmp_path / "pki")
    with Mosquitto(tmp_path / "broker", ca) as broker:
        with broker.client("observer") as observer:
            observer.subscribe("telemetry/#", qos=1)
            ...
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.support.pki import CredentialIssuer, Credentials
from tests.support.ports import free_port
from tests.support.waiting import wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HOST = "localhost"


class Mosquitto:
    """``mosquitto -c FILE`` with TLS on 127.0.0.1, client certificates required (CN = user name), the
    revocation list ``crl`` when given (read at start), and persistence, so sessions and queued messages
    survive :meth:`restart`."""

    def __init__(
        self, directory: Path, ca: CredentialIssuer, *, port: int | None = None, crl: Path | None = None
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ca = ca
        self.port = port or free_port()
        self.server = ca.issue("localhost", server=True)
        self.log = directory / "mosquitto.log"
        self.config = directory / "mosquitto.conf"
        self.process: subprocess.Popen[bytes] | None = None
        (directory / "data").mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"cafile {ca.certificate}",
            f"certfile {self.server.certificate}",
            f"keyfile {self.server.private_key}",
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
            "persistence true",
            f"persistence_location {directory / 'data'}/",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if crl is not None:
            lines.append(f"crlfile {crl}")
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")  # otherwise it drops to 'mosquitto' and cannot read tmp
        self.config.write_text("\n".join(lines) + "\n")

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Mosquitto:
        assert self.process is None or self.process.poll() is not None, "already running"
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

        # Binding right after a stop can take a moment; mosquitto logs "running" once it listens.
        wait_until(running, timeout=20, what="mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(
        self, name: str, *, clean_start: bool = True, credentials: Credentials | None = None
    ) -> MqttClient:
        """A connected paho MQTT 5 client with a certificate for ``name`` (also its client id)."""
        return MqttClient(self, name, clean_start=clean_start, credentials=credentials)


class MqttClient:
    """A paho test client (network loop in its thread) that records what it receives."""

    def __init__(
        self, broker: Mosquitto, name: str, *, clean_start: bool, credentials: Credentials | None
    ) -> None:
        credentials = credentials or broker.ca.issue(name)
        self.messages: list[paho.MQTTMessage] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subacks: dict[int, Any] = {}
        client = self.paho = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5
        )
        client.tls_set(str(credentials.ca), str(credentials.certificate), str(credentials.private_key))
        client.reconnect_delay_set(1, 2)
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *args: self._connected.clear()
        client.on_subscribe = self._on_subscribe
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        client.connect(HOST, broker.port, keepalive=30, clean_start=clean_start, properties=properties)
        client.loop_start()
        if not self._connected.wait(20):
            raise AssertionError(f"test client {name} did not connect")

    def __enter__(self) -> MqttClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with self._lock:
            self._subacks[mid] = reasons

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def wait_connected(self, timeout: float = 20) -> None:
        if not self._connected.wait(timeout):
            raise AssertionError("test client did not reconnect")

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        _, mid = self.paho.subscribe(topic_filter, options=SubscribeOptions(qos=qos))
        reasons = wait_until(lambda: self._subacks.get(mid), what=f"SUBACK for {topic_filter}")
        assert not reasons[0].is_failure, reasons

    def publish(self, topic: str, payload: bytes, qos: int = 1, properties: Properties | None = None) -> None:
        info = self.paho.publish(topic, payload, qos, properties=properties)
        info.wait_for_publish(10)

    def received(self, topic_prefix: str = "") -> list[paho.MQTTMessage]:
        with self._lock:
            return [message for message in self.messages if message.topic.startswith(topic_prefix)]

    def payloads(self, topic_prefix: str = "") -> list[bytes]:
        return [bytes(message.payload) for message in self.received(topic_prefix)]


def mtls_connect(port: int, client_id: str, ca: Path, certificate: Path, key: Path) -> Any:
    """Connect a paho MQTT 5 client over mutual TLS; the CONNACK reason, or the TLS error."""
    answered = threading.Event()
    reasons: list[Any] = []

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        reasons.append(reason)
        answered.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.tls_set(str(ca), str(certificate), str(key))
    client.on_connect = on_connect
    client.on_connect_fail = lambda *args: answered.set()
    client.on_disconnect = lambda *args: answered.set()
    try:
        client.connect("localhost", port, keepalive=30)
    except (ssl.SSLError, OSError) as exc:
        return exc
    client.loop_start()
    try:
        answered.wait(20)
        return reasons[0] if reasons else None
    finally:
        client.disconnect()
        client.loop_stop()
