"""The publisher and subscriber processes of the pub/sub benchmarks, over Greengrass IPC or over MQTT.

Over IPC it runs as an Edgewise component with the unmodified awsiotsdk v2 client; over MQTT it is a plain
process with paho-mqtt talking to a local Mosquitto. Both sides of a comparison run this same code, and
only the transport calls differ.

Each message is ``size`` bytes: a big-endian (sequence number, send time in ns from ``time.monotonic_ns``,
which every process on the machine shares) followed by padding. Over IPC it goes as a binaryMessage. The
sequence number's high 32 bits are the publisher's number (``--publisher``), so that with several publishers
the subscriber checks the order of each one's messages.

Usage::

    pubsub_client.py subscribe ipc|mqtt --topic T --count N --out OUT --ready READY [--port P --qos Q]
    pubsub_client.py publish ipc|mqtt --topic T --count N --size S --out OUT [--window W] [--rate R]
                     [--publisher I] [--port P --qos Q] --wait READY...

The subscriber writes READY once subscribed, stops after ``count`` messages (or 5 s without one once the
first arrived) and writes its counts to OUT as JSON and every latency to ``OUT.latencies``. The publisher waits for
every READY file, publishes with up to ``window`` unacknowledged publishes in flight (or at ``rate``
messages per second) and writes its own timing to OUT.
"""

from __future__ import annotations

import argparse
import array
import collections
import json
import os
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HEADER = struct.Struct(">qq")
PUBLISHER_SHIFT = 32
IDLE_S = 5.0
START_TIMEOUT_S = 120.0


class Receiver:
    """Counts messages and their latencies; ``done`` is set once ``count`` arrived."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.received = 0
        self.out_of_order = 0
        self.last_sequence: dict[int, int] = {}  # by publisher
        self.first_sent = 0
        self.last_received = 0
        self.latencies: array.array[int] = array.array("q")
        self.done = threading.Event()

    def on_payload(self, payload: bytes) -> None:
        now = time.monotonic_ns()
        sequence, sent = HEADER.unpack_from(payload)
        if self.received == 0:
            self.first_sent = sent
        self.received += 1
        self.last_received = now
        publisher = sequence >> PUBLISHER_SHIFT
        if sequence < self.last_sequence.get(publisher, -1):
            self.out_of_order += 1
        self.last_sequence[publisher] = sequence
        self.latencies.append(now - sent)
        if self.received >= self.count:
            self.done.set()

    def wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.done.wait(0.2):
            if self.received:
                if (time.monotonic_ns() - self.last_received) / 1e9 > IDLE_S:
                    return
            elif time.monotonic() > deadline:
                return

    def write(self, path: str) -> None:
        """The counts to ``path`` as JSON, every latency (int64 ns, native order) to ``path.latencies``."""
        with open(path + ".latencies", "wb") as out:
            self.latencies.tofile(out)
        summary = {
            "received": self.received,
            "expected": self.count,
            "out_of_order": self.out_of_order,
            "first_sent_ns": self.first_sent,
            "last_received_ns": self.last_received,
        }
        with open(path + ".tmp", "w") as out:
            json.dump(summary, out)
        os.replace(path + ".tmp", path)


def payloads(size: int, publisher: int = 0) -> Callable[[int], bytes]:
    """Makes the payload of message ``sequence``, stamped with the time it is made."""
    padding = b"x" * max(0, size - HEADER.size)
    first = publisher << PUBLISHER_SHIFT

    def make(sequence: int) -> bytes:
        return HEADER.pack(first + sequence, time.monotonic_ns()) + padding

    return make


def wait_ready(paths: list[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all(os.path.exists(path) for path in paths):
        if time.monotonic() > deadline:
            sys.exit(f"subscribers not ready after {START_TIMEOUT_S:g} s: {paths}")
        time.sleep(0.01)


def write_json(path: str, data: dict[str, Any]) -> None:
    with open(path + ".tmp", "w") as out:
        json.dump(data, out)
    os.replace(path + ".tmp", path)


def touch(path: str) -> None:
    with open(path, "w"):
        pass


class Pacer:
    """Spaces publishes ``1/rate`` seconds apart (no spacing when rate is 0)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.start = time.monotonic()

    def wait(self, index: int) -> None:
        if self.interval:
            delay = self.start + index * self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)


# -- IPC (awsiotsdk v2) ----------------------------------------------------------------------------------


def ipc_subscribe(args: argparse.Namespace) -> None:
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    receiver = Receiver(args.count)
    # Callbacks on the client's network thread, as paho calls on_message on its loop thread.
    client = GreengrassCoreIPCClientV2(executor=None)
    client.subscribe_to_topic(
        topic=args.topic, on_stream_event=lambda event: receiver.on_payload(event.binary_message.message)
    )
    touch(args.ready)
    receiver.wait()
    receiver.write(args.out)
    client.close()


def ipc_publish(args: argparse.Namespace) -> None:
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    from awsiot.greengrasscoreipc.model import BinaryMessage, PublishMessage

    client = GreengrassCoreIPCClientV2()
    make = payloads(args.size, args.publisher)
    wait_ready(args.wait)
    pending: collections.deque[Any] = collections.deque()
    pacer = Pacer(args.rate)
    start = time.monotonic()
    for sequence in range(args.count):
        pacer.wait(sequence)
        message = PublishMessage(binary_message=BinaryMessage(message=make(sequence)))
        pending.append(client.publish_to_topic_async(topic=args.topic, publish_message=message))
        if len(pending) >= args.window:
            pending.popleft().result(60)
    while pending:
        pending.popleft().result(60)
    write_json(args.out, {"published": args.count, "seconds": time.monotonic() - start})
    client.close()


# -- MQTT (paho-mqtt to Mosquitto) -----------------------------------------------------------------------


def mqtt_client(args: argparse.Namespace, name: str) -> Any:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}")
    client.max_inflight_messages_set(max(20, args.window))
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    if not connected.wait(30):
        sys.exit(f"could not connect to Mosquitto on port {args.port}")
    return client


def mqtt_subscribe(args: argparse.Namespace) -> None:
    receiver = Receiver(args.count)
    client = mqtt_client(args, "sub")
    subscribed = threading.Event()
    client.on_message = lambda _client, _userdata, message: receiver.on_payload(message.payload)
    client.on_subscribe = lambda *_: subscribed.set()
    client.subscribe(args.topic, qos=args.qos)
    if not subscribed.wait(30):
        sys.exit("the subscription was not acknowledged")
    touch(args.ready)
    receiver.wait()
    receiver.write(args.out)
    client.loop_stop()
    client.disconnect()


def mqtt_publish(args: argparse.Namespace) -> None:
    client = mqtt_client(args, "pub")
    make = payloads(args.size, args.publisher)
    wait_ready(args.wait)
    pending: collections.deque[Any] = collections.deque()
    pacer = Pacer(args.rate)
    start = time.monotonic()
    for sequence in range(args.count):
        pacer.wait(sequence)
        info = client.publish(args.topic, make(sequence), qos=args.qos)
        if args.qos:
            pending.append(info)
            if len(pending) >= args.window:
                pending.popleft().wait_for_publish(60)
    while pending:
        pending.popleft().wait_for_publish(60)
    write_json(args.out, {"published": args.count, "seconds": time.monotonic() - start})
    # QoS 0 has no acknowledgement: stop only once paho has written everything out.
    deadline = time.monotonic() + 60
    while client.want_write() and time.monotonic() < deadline:
        time.sleep(0.01)
    client.loop_stop()
    client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=["publish", "subscribe"])
    parser.add_argument("transport", choices=["ipc", "mqtt"])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--ready", help="subscriber: the file to create once subscribed")
    parser.add_argument("--wait", nargs="*", default=[], help="publisher: the subscribers' READY files")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--publisher", type=int, default=0, help="publisher: its number among several (0)")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--qos", type=int, choices=[0, 1], default=0)
    args = parser.parse_args()
    role = {
        ("subscribe", "ipc"): ipc_subscribe,
        ("publish", "ipc"): ipc_publish,
        ("subscribe", "mqtt"): mqtt_subscribe,
        ("publish", "mqtt"): mqtt_publish,
    }[(args.role, args.transport)]
    role(args)


if __name__ == "__main__":
    main()
