"""paho MQTT 5 test clients for the broker tests: devices over mutual TLS, workers with a password.

A client records CONNACKs, disconnections and messages; :func:`try_connect` reports whether a CONNACK with
success came back, without waiting longer than the broker takes to answer or hang up.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from tests.support.pki import Credentials
from tests.support.waiting import wait_until

HOST = "127.0.0.1"


class TestClient:
    """A paho client with its network loop in a thread."""

    __test__ = False

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        identity: Credentials | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.messages: list[paho.MQTTMessage] = []
        self.connacks: list[Any] = []
        self.disconnects: list[Any] = []
        self._answered = threading.Event()
        self._subacks: dict[int, Any] = {}
        self._pubacks: dict[int, Any] = {}
        client = self.paho = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if identity is not None:
            client.tls_set(str(identity.ca), str(identity.certificate), str(identity.private_key))
        if credentials is not None:
            client.username_pw_set(*credentials)
        client.on_connect = self._on_connect
        client.on_connect_fail = lambda *args: self._answered.set()
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        self.port = port

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> bool:
        """Connect and start the loop; True when the broker accepted the connection."""
        try:
            self.paho.connect(HOST, self.port, keepalive=30)
        except (ssl.SSLError, OSError):
            return False
        self.paho.loop_start()
        if not self._answered.wait(20):
            raise AssertionError("the broker neither answered nor hung up within 20 s")
        with self._lock:
            return bool(self.connacks) and not self.connacks[-1].is_failure

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            self.connacks.append(reason)
        self._answered.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            self.disconnects.append(reason)
        self._answered.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with self._lock:
            self._subacks[mid] = reasons

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self._pubacks[mid] = reason

    def subscribe(self, *filters: str) -> list[Any]:
        """Subscribe with QoS 1; returns the SUBACK reason codes."""
        _, mid = self.paho.subscribe([(topic_filter, SubscribeOptions(qos=1)) for topic_filter in filters])
        assert mid is not None
        return list(wait_until(lambda: self._subacks.get(mid), what=f"SUBACK for {filters}"))

    def publish(self, topic: str, payload: bytes = b"x", *, retain: bool = False) -> Any:
        """Publish with QoS 1 and wait for the PUBACK; returns its reason code."""
        mid = self.paho.publish(topic, payload, qos=1, retain=retain).mid
        assert mid is not None
        return wait_until(lambda: self._pubacks.get(mid), what=f"PUBACK for {topic}")

    def topics(self) -> list[str]:
        with self._lock:
            return [message.topic for message in self.messages]

    def wait_for(self, topic: str, timeout: float = 20) -> None:
        wait_until(lambda: topic in self.topics(), timeout=timeout, what=f"a message on {topic}")

    @property
    def connected(self) -> bool:
        return self.paho.is_connected()


def try_connect(port: int, client_id: str, identity: Credentials) -> bool:
    """Whether a device with ``identity`` gets connected (the connection is closed again)."""
    with TestClient(port, client_id, identity=identity) as client:
        return client.start()
