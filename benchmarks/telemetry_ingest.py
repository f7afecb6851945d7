"""Benchmark: end-to-end telemetry ingest, messages per second from N devices into the cloud's store, beside raw
Mosquitto throughput for the same messages from the same publishers on the same broker, in the same run.

The cloud is a real ``edgewise cloud up`` (its managed Mosquitto with mutual TLS and per-device ACLs, its
telemetry worker, SQLite). Each device is a process of its own, enrolled with its own certificate, publishing
with paho-mqtt (MQTT 3.1.1, QoS 1, up to 100 messages in flight) over mutual TLS. Two modes:

* messages: ``--messages`` JSON messages of about 100 bytes in all, split between the devices, each device on
  ``dt/<thing>/run<k>`` (the telemetry worker stores every message under ``dt/+/#``);
* batches: the same number of records, ``--batch-records`` to a stream export batch
  (``edgewise.protocol.telemetry.build_batch``) on the device's batch topic, as the runtime's exporter sends them.

A run is timed from telling every (connected, prepared) publisher to go until the last message is in the
store, counted in its SQLite database (read-only, rows after the last one stored before the run). The baseline
is the same publishers publishing the same payloads on ``dx/<thing>/run<k>`` (a topic outside the telemetry
filters, allowed by a benchmark policy), timed until a plain paho subscriber (QoS 1, its own certificate) has
received every message. Mosquitto drops QoS 1 messages beyond a subscriber's queue (``max_queued_messages``,
1000 by default), so a side that falls behind loses messages: a run also ends once nothing has arrived for
5 s, its rate is what arrived over the time to the last arrival, and what never arrived is reported. Runs
alternate, baseline first on even turns; medians of ``--repeat`` runs are shown, in records per second (a
batch counts its records).

Everything runs on this machine: the cloud, Mosquitto, the devices and the subscriber share its cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from _harness import (
    exit_on_sigterm,
    median,
    parse_args,
    print_machine,
    print_table,
    process_group,
    run_main,
    wait_for,
)
from fleet_fanout import Cloud, CloudPorts, Identity, cloud_up
from telemetry_common import StoredMessages, enroll

POLICY = "EdgewiseIngestBenchmark"
COUNTER = "ingest-counter"
#: How long one run may take before it counts as failed.
RUN_TIMEOUT_S = 600.0
#: A run ends once nothing more has arrived for this long.
QUIET_S = 5.0
MODES = ("messages", "batches")

#: One device: connects, then answers ``prepare TOPIC MODE COUNT RECORDS RUN`` with ``prepared`` once its
#: payloads are built, and ``go`` with ``done SECONDS`` once every publish is acknowledged.
PUBLISHER = r"""
import json, sys, threading, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from edgewise.protocol.telemetry import ExportBatch, ExportRecord, batch_topic, build_batch

host, port, ca, certificate, key, thing = sys.argv[1:7]
acknowledged = 0
lock = threading.Condition()

def on_publish(client, userdata, mid, reason_code, properties):
    global acknowledged
    with lock:
        acknowledged += 1
        lock.notify_all()

connected = threading.Event()
client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing)
client.tls_set(ca_certs=ca, certfile=certificate, keyfile=key)
client.max_inflight_messages_set(100)
client.max_queued_messages_set(0)
client.on_publish = on_publish
client.on_connect = lambda *args: connected.set()
client.connect(host, int(port), keepalive=60)
client.loop_start()
if not connected.wait(60):
    sys.exit("not connected")
print("ready", flush=True)
messages = []
for line in sys.stdin:
    command = line.split()
    if command[0] == "prepare":
        prefix, mode, count, records, run = command[1], command[2], int(command[3]), int(command[4]), command[5]
        def reading(number):
            body = {"device": thing, "seq": number, "temperature": 20.0 + number % 10, "unit": "C"}
            return json.dumps(body).encode()
        if mode == "messages":
            topic = f"{prefix}/{thing}/{run}"
            messages = [(topic, reading(number)) for number in range(count)]
        else:
            topic = batch_topic(thing) if prefix == "dt" else f"{prefix}/{thing}/{run}"
            messages = []
            for first in range(0, count, records):
                numbers = range(first, min(first + records, count))
                batch = ExportBatch(
                    client_token=f"{run}-{first}", stream=f"bench-{run}", source="bench", export_id="bench",
                    records=tuple(ExportRecord(n, int(time.time() * 1000), reading(n)) for n in numbers),
                )
                messages.append((topic, build_batch(batch)))
        print("prepared", flush=True)
    elif command[0] == "go":
        with lock:
            acknowledged = 0
        started = time.perf_counter()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        with lock:
            lock.wait_for(lambda: acknowledged >= len(messages), timeout=600)
        print(f"done {time.perf_counter() - started}", flush=True)
"""


def benchmark_policy() -> dict[str, Any]:
    """Devices publish under ``dx/<thing>/``; the counter subscribes to and receives all of ``dx/``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": "arn:aws:iot:*:*:topic/dx/${iot:Connection.Thing.ThingName}/*",
            },
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:*:*:topic/dx/*"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/dx/*"},
        ],
    }


@dataclass
class Publisher:
    process: subprocess.Popen[Any]

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, word: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(word):
            raise RuntimeError(f"a publisher answered {line!r} (exit code {self.process.poll()}), not {word}")
        return str(line)


@contextmanager
def publishers(cloud: Cloud, identities: Sequence[Identity], log: Path) -> Iterator[list[Publisher]]:
    """One connected publisher process per identity; all killed on the way out."""
    with ExitStack() as stack:
        stream = stack.enter_context(log.open("a"))
        started = []
        for identity in identities:
            argv = [
                sys.executable,
                "-c",
                PUBLISHER,
                cloud.mqtt_host,
                str(cloud.mqtt_port),
                str(cloud.ca_file),
            ]
            argv += [str(identity.certificate), str(identity.private_key), identity.thing]
            process = stack.enter_context(
                process_group(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stream, text=True)
            )
            started.append(Publisher(process))
        for publisher in started:
            publisher.expect("ready")
        yield started


class Counter:
    """A plain subscriber counting what it receives under ``dx/``."""

    def __init__(self, cloud: Cloud, identity: Identity) -> None:
        self.received = 0
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=identity.thing)
        self.client.tls_set(str(cloud.ca_file), str(identity.certificate), str(identity.private_key))
        self.client.on_connect = lambda client, *_: client.subscribe("dx/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._count
        self.client.connect(cloud.mqtt_host, cloud.mqtt_port, keepalive=60)
        self.client.loop_start()
        if not subscribed.wait(60):
            self.close()
            raise RuntimeError("the counting subscriber did not subscribe")
        # The counter is enrolled last: once its own probe comes back, the broker's ACL holds every device.
        probe = f"dx/{identity.thing}/probe"

        def probe_received() -> bool:
            self.client.publish(probe, b"probe", qos=1)
            return self.received > 0

        wait_for(
            probe_received, timeout=60, what="the broker to authorize the benchmark's devices", interval=0.2
        )
        self.received = 0

    def _count(self, *_: object) -> None:
        with self._lock:
            self.received += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(frozen=True)
class Run:
    """What one run delivered, and when the last of it arrived."""

    delivered: int  #: records stored (or, for the baseline, received)
    seconds: float  #: from ``go`` to the last one

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds


def arrivals(count: Callable[[], int], expected: int) -> tuple[int, float]:
    """Poll ``count`` until it reaches ``expected`` or stops growing for ``QUIET_S``; what it reached and the
    seconds to its last increase. A broker drops QoS 1 messages beyond a subscriber's queue limit, so a run
    may end short, and the loss is reported rather than waited for."""
    started = last_change = time.perf_counter()
    reached = 0
    while reached < expected:
        now = time.perf_counter()
        if now - last_change > QUIET_S or now - started > RUN_TIMEOUT_S:
            break
        current = count()
        if current != reached:
            reached, last_change = current, now
        time.sleep(0.01)
    return reached, last_change - started


def run_once(
    store: StoredMessages,
    devices: list[Publisher],
    counter: Counter,
    *,
    baseline: bool,
    mode: str,
    count: int,
    records: int,
    run: str,
) -> Run:
    """Send ``count`` records from ``devices`` and count them into the store (or, for the baseline, the counting
    subscriber)."""
    share = [count // len(devices) + (index < count % len(devices)) for index in range(len(devices))]
    prefix = "dx" if baseline else "dt"
    for device, part in zip(devices, share, strict=True):
        device.send(f"prepare {prefix} {mode} {part} {records} {run}")
    for device in devices:
        device.expect("prepared")
    per_message = records if mode == "batches" else 1
    messages = sum(-(-part // per_message) for part in share)
    received, mark = counter.received, store.mark()
    for device in devices:
        device.send("go")
    if baseline:
        reached, seconds = arrivals(lambda: counter.received - received, messages)
        delivered = min(reached * per_message, count)
    else:
        delivered, seconds = arrivals(lambda: store.after(mark), count)
    for device in devices:
        device.expect("done")
    return Run(delivered, seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 10], help="device counts N (1 10)")
    parser.add_argument("--messages", type=int, default=20000, help="records per run, all devices (20000)")
    parser.add_argument("--batch-records", type=int, default=100, help="records per export batch (100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side per N and mode (3)")
    args = parse_args(
        parser, argv, quick={"devices": [1, 2], "messages": 200, "batch_records": 10, "repeat": 1}
    )
    if min(args.devices) < 1 or max(args.devices) > 100 or min(args.messages, args.repeat) < 1:
        parser.error("--devices must be 1 to 100, --messages and --repeat positive")
    if not 1 <= args.batch_records <= 500:
        parser.error("--batch-records must be 1 to 500")
    exit_on_sigterm()

    print(f"== telemetry ingest: {args.messages} records per run from N = {args.devices} devices ==")
    print_machine()
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    runs: dict[tuple[int, str, bool], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-ingest-") as tmp:
        directory = Path(tmp)
        with cloud_up(directory / "data", CloudPorts.free()) as cloud:
            names = [f"ingest-{index:03d}" for index in range(max(args.devices))]
            identities = enroll(
                cloud, "ingest", [*names, COUNTER], directory / "pki", {POLICY: benchmark_policy()}
            )
            counter = Counter(cloud, identities[-1])
            store = StoredMessages(directory / "data" / "edgewise.db")
            try:
                for n in args.devices:
                    with publishers(cloud, identities[:n], directory / "publishers.log") as devices:
                        for mode in MODES:
                            for turn in range(args.repeat):
                                for baseline in (True, False) if turn % 2 == 0 else (False, True):
                                    run = f"n{n}-{mode}-{turn}-{'raw' if baseline else 'store'}"
                                    outcome = run_once(
                                        store,
                                        devices,
                                        counter,
                                        baseline=baseline,
                                        mode=mode,
                                        count=args.messages,
                                        records=args.batch_records,
                                        run=run,
                                    )
                                    runs.setdefault((n, mode, baseline), []).append(outcome)
            finally:
                store.close()
                counter.close()

    print()
    rows = []
    for n in args.devices:
        for mode in MODES:
            stored, raw = runs[(n, mode, False)], runs[(n, mode, True)]
            store_rate, raw_rate = median([run.rate for run in stored]), median([run.rate for run in raw])
            rows.append(
                [
                    n,
                    mode,
                    f"{store_rate:,.0f}",
                    ", ".join(f"{run.rate:,.0f}" for run in stored),
                    f"{sum(args.messages - run.delivered for run in stored):,}",
                    f"{raw_rate:,.0f}",
                    f"{sum(args.messages - run.delivered for run in raw):,}",
                    f"{store_rate / raw_rate:.2f}",
                ]
            )
    print(f"Records not delivered are summed over the {args.repeat} runs of each side.")
    print("Cloud store ingest relative to raw Mosquitto (same publishers, same broker), records/s:")
    print_table(
        [
            "N",
            "mode",
            "into the store (median)",
            "all runs",
            "not stored",
            "raw Mosquitto (median)",
            "not received",
            "ratio",
        ],
        rows,
    )


if __name__ == "__main__":
    run_main(main)
