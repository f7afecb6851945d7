"""A small cloud for export tests: a paho client that stores export batches once by (thing, stream, sequence
number) and answers them, as the cloud's telemetry ingest does."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as paho
from tests.support.mosquitto import MqttClient

from edgewise.protocol import telemetry


class SmallCloud:
    """Stores export batches idempotently and answers them, as the cloud's telemetry ingest does."""

    def __init__(self, client: MqttClient) -> None:
        self.records: dict[tuple[str, str, int], bytes] = {}
        self.batches = 0
        self._duplicates = 0
        self.answering = True
        self._lock = threading.Lock()
        self._client = client
        client.paho.on_message = self._on_message
        client.subscribe(telemetry.BATCH_FILTER)
        connected = client.paho.on_connect

        def resubscribe(paho_client: paho.Client, *args: Any) -> None:
            # The test client starts clean sessions: after the broker restarts its subscription must be made again.
            connected(paho_client, *args)
            paho_client.subscribe(telemetry.BATCH_FILTER, qos=1)

        client.paho.on_connect = resubscribe

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        thing = telemetry.thing_of_batch(message.topic)
        assert thing is not None
        batch = telemetry.parse_batch(message.payload)
        with self._lock:
            self.batches += 1
            new = 0
            for record in batch.records:
                key = (thing, batch.stream, record.sequence_number)
                if key not in self.records:
                    self.records[key] = record.payload
                    new += 1
            self._duplicates += len(batch.records) - new
            if not self.answering:
                return
        reply = telemetry.BatchAccepted(
            batch.client_token, new, len(batch.records) - new, batch.records[-1].sequence_number
        )
        client.publish(
            telemetry.reply_topic(thing, telemetry.ACCEPTED), telemetry.build_accepted(reply), qos=1
        )

    def stored(self) -> dict[tuple[str, str, int], bytes]:
        with self._lock:
            return dict(self.records)

    def duplicates(self) -> int:
        """Records received again after they were stored."""
        with self._lock:
            return self._duplicates
