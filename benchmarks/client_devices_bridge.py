"""Benchmark: messages per second from client devices through a core device's local broker and MQTT bridge to the
cloud, beside the same client devices publishing to the cloud gateway directly, in the same run.

The cloud is a real ``edgewise cloud up`` (its managed Mosquitto with mutual TLS and per-device ACLs). The core
device is a real runtime process enrolled with ``edgewise device bootstrap``, running the client-device built-ins
from a local deployment in Greengrass's keys: ``aws.greengrass.clientdevices.Auth`` (one device group selecting
the benchmark's clients, allowed to publish under ``bench/<thing>/``), ``mqtt.Moquette`` (the TLS gate in front of
the managed Mosquitto) and ``mqtt.Bridge`` (``bench/#`` from ``LocalMqtt`` to ``IotCore`` under the prefix
``dx/``). The ``--clients`` client devices (50) are things with certificates of the cloud's CA, associated with
the core through the API; each is a process of its own holding two paho-mqtt connections (MQTT 3.1.1, mutual
TLS): one to the core's broker (trusting the core's local CA, as discovery hands it out) and one to the cloud's.

A run is ``--messages`` QoS 1 messages of 100 bytes in all, split between the clients, each client publishing
with up to 20 messages in flight:

* bridge: on ``bench/<thing>/<run>`` to the core; the bridge forwards each to ``dx/bench/<thing>/<run>`` in the
  cloud over the core's one cloud connection;
* direct: on ``dx/bench/<thing>/<run>`` to the cloud gateway.

Both are timed from telling every (connected) client to go until a plain paho subscriber in the cloud (its own
certificate, ``dx/#`` at QoS 1) has received the run's last message. A side that loses messages (the bridge's
bounded queues drop what finds no room; Mosquitto drops QoS 1 messages beyond a subscriber's queue) ends once
nothing has arrived for 5 s: its rate is what arrived over the time to the last arrival, and the loss is shown.
Runs alternate, direct first on even turns; medians of ``--repeat`` runs are shown.

Everything runs on this machine: the cloud, its Mosquitto, the runtime, the core's Mosquitto, the clients and
the subscriber share its cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from _harness import (
    exit_on_sigterm,
    free_port,
    parse_args,
    print_machine,
    print_table,
    process_group,
    run_main,
    running_runtime,
    wait_for,
)
from edgewise.aws_components import BUILTIN_VERSIONS
from fleet_fanout import Cloud, CloudPorts, Identity, call, cloud_up
from gateway_common import ratio
from shadow_round_trip import bootstrap
from telemetry_common import enroll

CORE = "bridge-bench-core"
CLIENT_PREFIX = "bridge-client-"
COUNTER = "bridge-counter"
GROUP = "bridge-bench"
POLICY = "EdgewiseBridgeBenchmark"
AUTH = "aws.greengrass.clientdevices.Auth"
BROKER = "aws.greengrass.clientdevices.mqtt.Moquette"
BRIDGE = "aws.greengrass.clientdevices.mqtt.Bridge"
THING_VARIABLE = "${iot:Connection.Thing.ThingName}"
PAYLOAD_BYTES = 100
#: How long one run may take before its stragglers count as lost.
RUN_TIMEOUT_S = 600.0
#: A run ends once nothing more has arrived for this long.
QUIET_S = 5.0
SETUP_TIMEOUT_S = 120.0
SIDES = ("direct", "bridge")

#: One client device: connects to the core's broker (again and again until the core, which may not have its
#: trust list yet, lets it in) and to the cloud's, prints ``ready``; then answers ``go SIDE COUNT RUN`` with
#: ``done SECONDS`` once every publish is acknowledged.
CLIENT = r"""
import sys, threading, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

thing, certificate, key = sys.argv[1:4]
core_host, core_port, core_ca, cloud_host, cloud_port, cloud_ca = sys.argv[4:10]
size = int(sys.argv[10])
lock = threading.Condition()
acknowledged = 0

def on_publish(client, userdata, mid, reason_code, properties):
    global acknowledged
    with lock:
        acknowledged += 1
        lock.notify_all()

def connect(host, port, ca, deadline):
    while True:
        answer = []
        answered = threading.Event()
        def on_connect(client, userdata, flags, reason_code, properties):
            answer.append(reason_code)
            answered.set()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing)
        client.tls_set(ca_certs=ca, certfile=certificate, keyfile=key)
        client.max_inflight_messages_set(20)
        client.max_queued_messages_set(0)
        client.on_connect = on_connect
        client.on_publish = on_publish
        try:
            client.connect(host, int(port), keepalive=60)
            client.loop_start()
            if answered.wait(2) and not answer[0].is_failure:
                return client
        except OSError:
            pass
        client.loop_stop()
        client.disconnect()
        if time.monotonic() > deadline:
            sys.exit(f"{thing} cannot connect to {host}:{port}: {answer}")
        time.sleep(0.2)

deadline = time.monotonic() + 120
clients = {"bridge": connect(core_host, core_port, core_ca, deadline),
           "direct": connect(cloud_host, cloud_port, cloud_ca, deadline)}
print("ready", flush=True)
for line in sys.stdin:
    side, count, run = line.split()[1:4]
    topic = f"bench/{thing}/{run}" if side == "bridge" else f"dx/bench/{thing}/{run}"
    head = f'{{"device":"{thing}","run":"{run}","seq":'
    payloads = []
    for number in range(int(count)):
        body = f'{head}{number},"pad":"'
        payloads.append((body + "x" * max(0, size - len(body) - 2) + '"}').encode())
    with lock:
        acknowledged = 0
    started = time.perf_counter()
    for payload in payloads:
        clients[side].publish(topic, payload, qos=1)
    with lock:
        lock.wait_for(lambda: acknowledged >= len(payloads), timeout=600)
    print(f"done {time.perf_counter() - started}", flush=True)
"""


def benchmark_policy() -> dict[str, Any]:
    """Every member (the core, the clients, the counter) may publish, subscribe to and receive ``dx/``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": "arn:aws:iot:*:*:topic/dx/*",
            },
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/dx/*"},
        ],
    }


def core_deployment(port: int) -> dict[str, Any]:
    """The local deployment of Auth, the broker and the bridge, in Greengrass's keys."""
    configurations = {
        AUTH: {
            "deviceGroups": {
                "formatVersion": "2021-03-05",
                "definitions": {
                    "BenchClients": {"selectionRule": f"thingName: {CLIENT_PREFIX}*", "policyName": "Bench"}
                },
                "policies": {
                    "Bench": {
                        "Connect": {
                            "operations": ["mqtt:connect"],
                            "resources": [f"mqtt:clientId:{THING_VARIABLE}"],
                        },
                        "Publish": {
                            "operations": ["mqtt:publish"],
                            "resources": [f"mqtt:topic:bench/{THING_VARIABLE}/*"],
                        },
                    }
                },
            }
        },
        BROKER: {"moquette": {"ssl_port": port, "host": "127.0.0.1"}},
        BRIDGE: {
            "mqttTopicMapping": {
                "Clients": {
                    "topic": "bench/#",
                    "source": "LocalMqtt",
                    "target": "IotCore",
                    "targetTopicPrefix": "dx/",
                }
            }
        },
    }
    return {
        "rootComponentVersionsToAdd": {name: BUILTIN_VERSIONS[name] for name in configurations},
        "componentToConfiguration": {name: {"MERGE": body} for name, body in configurations.items()},
    }


class Subscriber:
    """A plain paho subscriber in the cloud counting what arrives under ``dx/``, by run (the topic's last
    level), with the time of each run's last arrival."""

    def __init__(self, cloud: Cloud, identity: Identity) -> None:
        self.counts: Tally[str] = Tally()
        self.last: dict[str, float] = {}
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

    def _count(self, _client: paho.Client, _userdata: object, message: paho.MQTTMessage) -> None:
        run = message.topic.rsplit("/", 1)[-1]
        now = time.perf_counter()
        with self._lock:
            self.counts[run] += 1
            self.last[run] = now

    def arrived(self, run: str) -> tuple[int, float]:
        with self._lock:
            return self.counts[run], self.last.get(run, 0.0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Client:
    process: subprocess.Popen[Any]

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, word: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(word):
            raise RuntimeError(f"a client answered {line!r} (exit code {self.process.poll()}), not {word}")
        return str(line)


@contextmanager
def client_devices(
    identities: Sequence[Identity], core: tuple[str, int, Path], cloud: Cloud, log: Path
) -> Iterator[list[Client]]:
    """One connected client process per identity; all killed on the way out."""
    with ExitStack() as stack:
        stream = stack.enter_context(log.open("a"))
        started = []
        for identity in identities:
            argv = [sys.executable, "-c", CLIENT, identity.thing, str(identity.certificate)]
            argv += [str(identity.private_key), core[0], str(core[1]), str(core[2])]
            argv += [cloud.mqtt_host, str(cloud.mqtt_port), str(cloud.ca_file), str(PAYLOAD_BYTES)]
            process = stack.enter_context(
                process_group(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stream, text=True)
            )
            started.append(Client(process))
        for client in started:
            client.expect("ready")
        yield started


@dataclass(frozen=True)
class Run:
    delivered: int
    seconds: float  #: from ``go`` to the last arrival

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def run_once(
    clients: Sequence[Client],
    subscriber: Subscriber,
    side: str,
    count: int,
    run: str,
    *,
    quiet: float = QUIET_S,
) -> Run:
    """``count`` messages in all from ``clients`` on ``side``, until the subscriber has them all or nothing
    more has arrived for ``quiet`` seconds."""
    share = [count // len(clients) + (index < count % len(clients)) for index in range(len(clients))]
    started = time.perf_counter()
    for client, part in zip(clients, share, strict=True):
        client.send(f"go {side} {part} {run}")
    reached, last_change = 0, started
    while reached < count:
        now = time.perf_counter()
        if now - last_change > quiet or now - started > RUN_TIMEOUT_S:
            break
        current, _ = subscriber.arrived(run)
        if current != reached:
            reached, last_change = current, now
        time.sleep(0.005)
    for client in clients:
        client.expect("done")
    delivered, last = subscriber.arrived(run)
    return Run(delivered, (last - started) if delivered else 0.0)


def delivers(clients: Sequence[Client], subscriber: Subscriber, side: str) -> bool:
    """Whether one message from each client on ``side`` reaches the subscriber (a run that is not timed)."""
    return run_once(
        clients, subscriber, side, len(clients), f"warm-{side}-{time.monotonic_ns()}", quiet=1.0
    ).delivered == len(clients)


def prepare_core(cloud: Cloud, directory: Path, clients: Sequence[Identity]) -> Path:
    """The core device's files, in the benchmark's group, with the clients associated with it."""
    files = bootstrap(cloud, CORE, directory / "core")
    with cloud.api() as api:
        call(api, "PUT", f"/thing-groups/{GROUP}/things/{CORE}")
        for first in range(0, len(clients), 100):
            entries = [{"thingName": identity.thing} for identity in clients[first : first + 100]]
            answer = call(api, "POST", f"/core-devices/{CORE}/client-devices/associate", {"entries": entries})
            if answer["errorEntries"]:
                raise RuntimeError(f"associating the clients failed: {answer['errorEntries']}")
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50, help="client devices, each its own process (50)")
    parser.add_argument("--messages", type=int, default=10000, help="messages per run, all clients (10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (3)")
    args = parse_args(parser, argv, quick={"clients": 3, "messages": 60, "repeat": 1})
    if not 1 <= args.clients <= 200 or min(args.messages, args.repeat) < 1 or args.messages < args.clients:
        parser.error("--clients must be 1 to 200, --repeat positive, --messages at least --clients")
    exit_on_sigterm()

    print(f"== client devices: {args.messages} messages per run from {args.clients} clients ==")
    print_machine()
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    runs: dict[str, list[Run]] = {side: [] for side in SIDES}
    drops: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-bridge-") as tmp:
        directory = Path(tmp)
        with cloud_up(directory / "data", CloudPorts.free()) as cloud:
            names = [f"{CLIENT_PREFIX}{index:03d}" for index in range(args.clients)]
            identities = enroll(
                cloud, GROUP, [*names, COUNTER], directory / "pki", {POLICY: benchmark_policy()}
            )
            clients, counter = identities[:-1], identities[-1]
            files = prepare_core(cloud, directory, clients)
            options = ("--thing-name", CORE, "--config", str(files / "edgewise.yaml"))
            with running_runtime(directory / "root", *options) as runtime:
                port = free_port()
                recipes = directory / "recipes"
                recipes.mkdir()
                deployment = runtime.call(
                    "CreateLocalDeployment", {"recipeDirectoryPath": str(recipes), **core_deployment(port)}
                )["deploymentId"]
                if runtime.wait_deployment(deployment) != "SUCCEEDED":
                    raise RuntimeError("the client-device deployment failed")
                core_ca = runtime.paths.component_work(AUTH) / "certificates" / "ca.pem"
                wait_for(core_ca.exists, timeout=SETUP_TIMEOUT_S, what="the core's local CA")
                subscriber = Subscriber(cloud, counter)
                try:
                    core = ("127.0.0.1", port, core_ca)
                    with client_devices(clients, core, cloud, directory / "clients.log") as devices:
                        # Until both paths deliver (the cloud's ACL may still be granting the core dx/), not timed.
                        for side in SIDES:
                            wait_for(
                                partial(delivers, devices, subscriber, side),
                                timeout=SETUP_TIMEOUT_S,
                                what=f"the {side} path to deliver",
                                interval=0.5,
                            )
                        for turn in range(args.repeat):
                            for side in SIDES if turn % 2 == 0 else tuple(reversed(SIDES)):
                                outcome = run_once(devices, subscriber, side, args.messages, f"{side}-{turn}")
                                runs[side].append(outcome)
                                print(
                                    f"  {side:>6} run {turn}: {outcome.delivered}/{args.messages} in "
                                    f"{outcome.seconds:.2f} s = {outcome.rate:,.0f} msg/s",
                                    flush=True,
                                )
                finally:
                    subscriber.close()
                drops = [
                    line for line in runtime.paths.runtime_log.read_text().splitlines() if "no room" in line
                ]
    if drops:
        print("\nThe bridge's drop reports in the core's log (one line per 10 s at most):")
        for line in drops:
            print(f"  {line}")
    rates = {side: statistics.median(run.rate for run in runs[side]) for side in SIDES}
    lost = {side: sum(args.messages - run.delivered for run in runs[side]) for side in SIDES}
    print()
    print_table(
        ["path", "median msg/s", "messages lost (all runs)"],
        [
            ["client -> cloud gateway directly", f"{rates['direct']:,.0f}", str(lost["direct"])],
            ["client -> core broker -> bridge -> cloud", f"{rates['bridge']:,.0f}", str(lost["bridge"])],
        ],
    )
    print()
    print(f"bridge / direct (median msg/s): {ratio(rates['bridge'], rates['direct'])}x")


if __name__ == "__main__":
    run_main(main)
