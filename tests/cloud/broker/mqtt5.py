"""A device as AWS IoT Device SDK code writes it: an ``awscrt.mqtt5`` client from
``awsiot.mqtt5_client_builder.mtls_from_path``, recording what the CRT reports through events and futures.

The CRT reconnects by itself after a failure or a disconnection; :meth:`Mqtt5Device.start` returns at the
first outcome (connected, or refused) and :meth:`Mqtt5Device.stop` ends the retrying.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from awscrt import mqtt5
from awsiot import mqtt5_client_builder
from tests.support.pki import Credentials

#: How long any single broker answer may take before the test fails.
DEADLINE = 20.0


class Mqtt5Device:
    """One awscrt MQTT 5 client over mutual TLS to ``localhost:port``."""

    def __init__(self, port: int, client_id: str, identity: Credentials, *, ca: Path | None = None) -> None:
        self.client_id = client_id
        self._changed = threading.Condition()
        self.connections = 0
        self.failures: list[mqtt5.LifecycleConnectFailureData] = []
        self.disconnections: list[mqtt5.LifecycleDisconnectData] = []
        self.messages: list[tuple[str, bytes]] = []
        self._stopped = threading.Event()
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint="localhost",
            port=port,
            cert_filepath=str(identity.certificate),
            pri_key_filepath=str(identity.private_key),
            ca_filepath=str(ca or identity.ca),
            client_id=client_id,
            # Retries would connect again between the assertions of a refusal test; a second is plenty.
            min_reconnect_delay_ms=1000,
            max_reconnect_delay_ms=2000,
            on_publish_received=self._on_publish_received,
            on_lifecycle_connection_success=self._on_connection_success,
            on_lifecycle_connection_failure=self._on_connection_failure,
            on_lifecycle_disconnection=self._on_disconnection,
            on_lifecycle_stopped=lambda _data: self._stopped.set(),
        )

    def __enter__(self) -> Mqtt5Device:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> bool:
        """Start connecting; True once connected, False once the first attempt failed."""
        self.client.start()
        with self._changed:
            if not self._changed.wait_for(lambda: self.connections or self.failures, DEADLINE):
                raise AssertionError(f"{self.client_id}: no connection outcome within {DEADLINE} s")
            return self.connections > 0

    def stop(self) -> None:
        """Disconnect and stop reconnecting; returns once the CRT says it stopped."""
        self.client.stop()
        if not self._stopped.wait(DEADLINE):
            raise AssertionError(f"{self.client_id}: the client did not stop within {DEADLINE} s")

    def subscribe(self, *filters: str) -> list[mqtt5.SubackReasonCode]:
        """Subscribe with QoS 1; the SUBACK's reason codes."""
        packet = mqtt5.SubscribePacket(
            subscriptions=[
                mqtt5.Subscription(topic_filter=each, qos=mqtt5.QoS.AT_LEAST_ONCE) for each in filters
            ]
        )
        suback: mqtt5.SubackPacket = self.client.subscribe(packet).result(DEADLINE)
        return list(suback.reason_codes)

    def publish(self, topic: str, payload: bytes = b"x") -> mqtt5.PubackReasonCode:
        """Publish with QoS 1; the PUBACK's reason code."""
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
        completion: mqtt5.PublishCompletionData = self.client.publish(packet).result(DEADLINE)
        assert completion.puback is not None, f"no PUBACK for {topic}"
        return completion.puback.reason_code

    def topics(self) -> list[str]:
        with self._changed:
            return [topic for topic, _ in self.messages]

    def wait_for(self, topic: str, payload: bytes | None = None) -> None:
        """Until a message on ``topic`` (with ``payload``, if given) arrived."""

        def arrived() -> bool:
            return any(got == topic and payload in (None, body) for got, body in self.messages)

        with self._changed:
            if not self._changed.wait_for(arrived, DEADLINE):
                raise AssertionError(
                    f"{self.client_id}: nothing on {topic} within {DEADLINE} s: {self.messages}"
                )

    def wait_disconnected(self) -> mqtt5.LifecycleDisconnectData:
        with self._changed:
            if not self._changed.wait_for(lambda: self.disconnections, DEADLINE):
                raise AssertionError(f"{self.client_id}: still connected after {DEADLINE} s")
            return self.disconnections[0]

    def _notify(self, record: Any) -> None:
        with self._changed:
            record()
            self._changed.notify_all()

    def _on_publish_received(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        self._notify(lambda: self.messages.append((packet.topic, bytes(packet.payload or b""))))

    def _on_connection_success(self, _data: mqtt5.LifecycleConnectSuccessData) -> None:
        def record() -> None:
            self.connections += 1

        self._notify(record)

    def _on_connection_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        self._notify(lambda: self.failures.append(data))

    def _on_disconnection(self, data: mqtt5.LifecycleDisconnectData) -> None:
        self._notify(lambda: self.disconnections.append(data))
