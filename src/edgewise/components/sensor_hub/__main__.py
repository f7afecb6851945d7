"""``python -m edgewise.components.sensor_hub``: publishes simulated hub readings (edgewise.components.simulation)
every interval, on a local pub/sub topic and to the cloud with PublishToIoTCore, so that a device without
sensors has data for the ML loop: telemetry to train on in the cloud, readings for the inference component.

``{thing}`` in a topic is the device's thing name. An empty topic turns that destination off. A publish that
fails is logged (once per outage) and the next reading is tried all the same.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from edgewise.components.process import configure_logging, connect_ipc, stop_on_signals
from edgewise.components.simulation import Reading, SimulationSettings, readings

logger = logging.getLogger("edgewise.components.sensor_hub")


class Publisher(Protocol):
    """Where readings go (the IPC client, or a test's recorder)."""

    def local(self, topic: str, payload: dict[str, object]) -> None: ...

    def cloud(self, topic: str, payload: bytes) -> None: ...


class IpcPublisher:
    """Publishes with the awsiotsdk V2 IPC client: PublishToTopic (JSON) and PublishToIoTCore (QoS 1)."""

    def __init__(self, client: object) -> None:
        self._client = client

    def local(self, topic: str, payload: dict[str, object]) -> None:
        from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage

        self._client.publish_to_topic(  # type: ignore[attr-defined]
            topic=topic, publish_message=PublishMessage(json_message=JsonMessage(message=payload))
        )

    def cloud(self, topic: str, payload: bytes) -> None:
        from awsiot.greengrasscoreipc.model import QOS

        self._client.publish_to_iot_core(  # type: ignore[attr-defined]
            topic_name=topic, qos=QOS.AT_LEAST_ONCE, payload=payload
        )


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m edgewise.components.sensor_hub")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("--fault-rate", type=float, default=0.01, help="chance a fault starts at a reading")
    parser.add_argument(
        "--drift-after", type=int, default=-1, help="readings before drift starts (-1: never)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--simulated-interval",
        type=float,
        default=0.0,
        help="simulated seconds per reading, for the 600 s cycle (0: the interval)",
    )
    parser.add_argument(
        "--local-topic", default="sensors/{thing}/reading", help="local pub/sub topic ('' off)"
    )
    parser.add_argument("--iot-core-topic", default="dt/{thing}/reading", help="cloud topic ('' off)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many readings (0: never)")
    args = parser.parse_args(argv)
    try:
        args.settings = SimulationSettings(
            seed=args.seed,
            interval_s=args.interval,
            simulated_interval_s=args.simulated_interval or None,
            fault_rate=args.fault_rate,
            drift_after=None if args.drift_after < 0 else args.drift_after,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return args


class SensorHub:
    """Publishes one reading per interval until stopped (or ``count`` readings were published)."""

    def __init__(
        self, publisher: Publisher, *, thing: str, local_topic: str, iot_core_topic: str, count: int = 0
    ) -> None:
        self._publisher = publisher
        self._thing = thing
        self._local_topic = local_topic.replace("{thing}", thing)
        self._iot_core_topic = iot_core_topic.replace("{thing}", thing)
        self._count = count
        self._failing = False

    def publish(self, reading: Reading) -> None:
        payload = reading.payload(self._thing)
        try:
            if self._local_topic:
                self._publisher.local(self._local_topic, payload)
            if self._iot_core_topic:
                self._publisher.cloud(self._iot_core_topic, json.dumps(payload).encode())
        except Exception as error:
            if not self._failing:
                logger.warning("publish failed, still trying: %s", error)
            self._failing = True
            return
        if self._failing:
            logger.info("publishing again")
        self._failing = False

    def run(self, settings: SimulationSettings, stop: threading.Event) -> int:
        """Publish until ``stop`` is set; how many readings were made."""
        made = 0
        for reading in readings(settings, start=time.time()):
            self.publish(reading)
            made += 1
            if made == self._count:
                break
            # The next reading is due at its own timestamp, so a slow publish does not stretch the series.
            if stop.wait(max(0.0, reading.timestamp + settings.interval_s - time.time())):
                break
        return made


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    configure_logging()
    stop = threading.Event()
    stop_on_signals(stop.set, thread_name="sensor-hub-stop")
    client = connect_ipc()
    if client is None:
        return 1
    hub = SensorHub(
        IpcPublisher(client),
        thing=os.environ.get("AWS_IOT_THING_NAME", "sensor-hub"),
        local_topic=args.local_topic,
        iot_core_topic=args.iot_core_topic,
        count=args.count,
    )
    try:
        made = hub.run(args.settings, stop)
        logger.info("sensor hub stopped after %d readings", made)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
