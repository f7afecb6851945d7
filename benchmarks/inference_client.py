"""The components of the inference overhead benchmark: a sensor that drives the measurement, and an echo.

Both run as Edgewise components with the unmodified awsiotsdk v2 client.

Usage::

    inference_client.py echo --input T --output T
    inference_client.py drive --rows ROWS.json --out OUT.json --count N --throughput-count M --window W
                        --path NAME INPUT OUTPUT [--path ...]

``echo`` republishes every JSON message of its input topic on its output topic with ``publish_to_topic_async``,
as the inference component publishes a result, from the V2 client's one executor thread (the inference
component handles messages on the connection's thread instead): local pub/sub with no model.

``drive`` publishes the rows of ROWS.json (a JSON list of payload objects, each given a ``seq``) on each path's
input topic and takes the reply on its output topic (the ``seq`` of an echo, ``passthrough.seq`` of an
inference result). First it waits until every path answers. Latency: ``count`` messages one at a time per path,
the paths taking turns message by message (so that both see the same machine), each timed from just before
the publish call to the reply's arrival in the subscriber callback. Throughput: ``throughput-count`` messages
per path, up to ``window`` unanswered at once, replies per second from the first publish to the last reply.
It writes OUT.json (latencies in ns per path, replies per second per path) and then idles until stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

READY_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 30.0


def echo(input_topic: str, output_topic: str) -> None:
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage

    client = GreengrassCoreIPCClientV2(executor=ThreadPoolExecutor(max_workers=1))

    def on_message(event: Any) -> None:
        if event.json_message is not None:
            client.publish_to_topic_async(
                topic=output_topic,
                publish_message=PublishMessage(json_message=JsonMessage(message=event.json_message.message)),
            )

    client.subscribe_to_topic(topic=input_topic, on_stream_event=on_message)
    threading.Event().wait()


class Path:
    """One way from a publish to a reply, with what has arrived on it."""

    def __init__(self, name: str, input_topic: str, output_topic: str) -> None:
        self.name = name
        self.input_topic = input_topic
        self.output_topic = output_topic
        self.arrived: dict[int, int] = {}  # seq -> monotonic ns
        self.condition = threading.Condition()
        self.slots = threading.Semaphore(1)

    def on_reply(self, event: Any) -> None:
        now = time.monotonic_ns()
        message = event.json_message.message if event.json_message is not None else None
        if not isinstance(message, dict):
            return
        seq = message.get("seq", (message.get("passthrough") or {}).get("seq"))
        if not isinstance(seq, int):
            return
        with self.condition:
            self.arrived[seq] = now
            self.condition.notify_all()
        self.slots.release()

    def wait(self, seq: int, timeout: float) -> int | None:
        with self.condition:
            self.condition.wait_for(lambda: seq in self.arrived, timeout=timeout)
            return self.arrived.get(seq)


def drive(arguments: argparse.Namespace) -> None:
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage

    rows: list[dict[str, Any]] = json.load(open(arguments.rows))  # noqa: SIM115 - read once
    client = GreengrassCoreIPCClientV2()
    paths = [Path(name, input_topic, output_topic) for name, input_topic, output_topic in arguments.path]
    for path in paths:
        client.subscribe_to_topic(topic=path.output_topic, on_stream_event=path.on_reply)
    seq = -1

    def publish(path: Path, row: dict[str, Any]) -> tuple[int, int]:
        nonlocal seq
        seq += 1
        message = {**row, "seq": seq}
        sent = time.monotonic_ns()
        client.publish_to_topic(
            topic=path.input_topic, publish_message=PublishMessage(json_message=JsonMessage(message=message))
        )
        return seq, sent

    # The inference component answers once its model is loaded; probe every path until it does.
    deadline = time.monotonic() + READY_TIMEOUT_S
    for path in paths:
        while True:
            probe, _ = publish(path, rows[0])
            if path.wait(probe, 0.5) is not None:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{path.name}: no reply on {path.output_topic} in {READY_TIMEOUT_S:g} s")
    latencies: dict[str, list[int]] = {path.name: [] for path in paths}
    for index in range(arguments.count):
        row = rows[index % len(rows)]
        turn = paths[index % len(paths) :] + paths[: index % len(paths)]
        for path in turn:
            sent_seq, sent = publish(path, row)
            arrived = path.wait(sent_seq, REPLY_TIMEOUT_S)
            if arrived is None:
                raise SystemExit(f"{path.name}: no reply to message {sent_seq} in {REPLY_TIMEOUT_S:g} s")
            latencies[path.name].append(arrived - sent)
    rates: dict[str, float] = {}
    for path in paths:
        path.slots = threading.Semaphore(arguments.window)
        first = None
        last_seq = -1
        for index in range(arguments.throughput_count):
            if not path.slots.acquire(timeout=REPLY_TIMEOUT_S):
                raise SystemExit(f"{path.name}: replies stopped during the throughput run")
            last_seq, sent = publish(path, rows[index % len(rows)])
            first = sent if first is None else first
        arrived = path.wait(last_seq, REPLY_TIMEOUT_S)
        if arrived is None or first is None:
            raise SystemExit(f"{path.name}: the last throughput message got no reply")
        # Replies of one path arrive in order (one executor thread on each side), so the last is the latest.
        rates[path.name] = arguments.throughput_count / ((arrived - first) / 1e9)
    with open(arguments.out + ".tmp", "w") as handle:
        json.dump({"latencies_ns": latencies, "per_second": rates}, handle)
    os.replace(arguments.out + ".tmp", arguments.out)
    threading.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    roles = parser.add_subparsers(dest="role", required=True)
    echo_role = roles.add_parser("echo")
    echo_role.add_argument("--input", required=True)
    echo_role.add_argument("--output", required=True)
    drive_role = roles.add_parser("drive")
    drive_role.add_argument("--rows", required=True)
    drive_role.add_argument("--out", required=True)
    drive_role.add_argument("--count", type=int, required=True)
    drive_role.add_argument("--throughput-count", type=int, required=True)
    drive_role.add_argument("--window", type=int, required=True)
    drive_role.add_argument("--path", nargs=3, action="append", required=True, metavar=("NAME", "IN", "OUT"))
    parsed = parser.parse_args()
    if parsed.role == "echo":
        echo(parsed.input, parsed.output)
    else:
        drive(parsed)
    sys.exit(0)
