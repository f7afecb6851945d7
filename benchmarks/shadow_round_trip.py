"""Benchmark: shadow round trips against a real ``edgewise cloud up``, beside a plain MQTT round trip on the same
broker in the same run.

1. Over the device mutual-TLS listener, one paho-mqtt 2 client (MQTT 5, the default device policy) times, one
   request at a time, a shadow ``update`` to its ``update/accepted`` (the cloud's shadow worker parses, merges
   and commits the document, then answers), and a plain publish to a topic it subscribes to itself (the broker
   only). Both run in alternating blocks of 50 on the same connection, ``--count`` of each.
2. End to end through the ShadowManager sync: a real runtime process enrolled with ``edgewise device
   bootstrap`` syncs a named shadow (``aws.greengrass.ShadowManager`` configured by a local deployment), and an
   IPC subscriber using the awsiotsdk (the client a component uses) listens to the local ``update/delta``. Each
   of ``--sync-count`` rounds is a REST ``POST /api/v1/things/{thing}/shadow`` changing ``desired``, timed until
   the delta reaches the subscriber.

Everything runs on this machine: the cloud (API, workers, Mosquitto), the runtime and the clients share its
cores. Latencies are wall-clock, per request, sequential (no pipelining).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from _harness import (
    exit_on_sigterm,
    parse_args,
    print_machine,
    print_table,
    run_main,
    running_runtime,
    wait_for,
)
from fleet_fanout import Cloud, cloud_up
from gateway_common import percentile, ratio

DEVICE = "shadow-bench-device"
CORE = "shadow-bench-core"
SHADOW = "bench"
BLOCK = 50
TIMEOUT_S = 30.0


class Probe:
    """A device's paho client that times one message out and its answer back."""

    def __init__(self, cloud: Cloud, files: Path) -> None:
        self.prefix = f"$aws/things/{DEVICE}/shadow/name/{SHADOW}"
        self.echo = f"$aws/things/{DEVICE}/bench/echo"
        self._arrived: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.tls_set(
            ca_certs=str(files / "root-ca.pem"),
            certfile=str(files / "device.pem.crt"),
            keyfile=str(files / "private.pem.key"),
        )
        # Nagle off, as the runtime's cloud link has it: a client that leaves it on waits ~40 ms for the broker's
        # delayed ACK before each publish that follows a PUBACK it sent.
        self.client.on_socket_open = lambda _client, _userdata, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect(cloud.mqtt_host, cloud.mqtt_port, keepalive=30)
        self.client.loop_start()
        topics = [
            (f"{self.prefix}/update/accepted", 1),
            (f"{self.prefix}/update/rejected", 1),
            (self.echo, 1),
        ]
        self.client.subscribe(topics)
        if not self._subscribed.wait(TIMEOUT_S):
            raise TimeoutError("the benchmark device's subscriptions were not acknowledged")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == self.echo:
            key = message.payload.decode()
        else:
            document = json.loads(message.payload)
            if message.topic.endswith("/rejected"):
                print(f"update rejected: {document}", file=sys.stderr)
            key = str(document.get("clientToken"))
        with self._lock:
            event = self._arrived.get(key)
        if event is not None:
            event.set()

    def _round_trip(self, topic: str, payload: bytes, key: str, timeout: float = TIMEOUT_S) -> float:
        event = threading.Event()
        with self._lock:
            self._arrived[key] = event
        started = time.perf_counter()
        self.client.publish(topic, payload, qos=1)
        answered = event.wait(timeout)
        elapsed = time.perf_counter() - started
        with self._lock:
            del self._arrived[key]
        if not answered:
            raise TimeoutError(f"no answer to {key} on {topic} within {timeout:g} s")
        return elapsed

    def shadow_update(self, number: int, timeout: float = TIMEOUT_S) -> float:
        token = f"u{number}"
        body = json.dumps({"state": {"reported": {"n": number}}, "clientToken": token}).encode()
        return self._round_trip(f"{self.prefix}/update", body, token, timeout)

    def plain_publish(self, number: int, timeout: float = TIMEOUT_S) -> float:
        key = f"p{number}"
        return self._round_trip(self.echo, key.encode(), key, timeout)


def open_probe(cloud: Cloud, files: Path) -> Probe:
    """A probe the broker answers: the device's ACL entry reaches Mosquitto shortly after the certificate is
    issued, and until then its subscriptions and publishes are refused, so connect until both kinds work."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        probe = Probe(cloud, files)
        try:
            probe.shadow_update(0, timeout=1.0)
            probe.plain_publish(0, timeout=1.0)
        except TimeoutError:
            probe.close()
            if time.monotonic() > deadline:
                raise
        else:
            return probe


def bootstrap(cloud: Cloud, thing: str, out: Path) -> Path:
    """``edgewise device bootstrap --thing`` as an operator runs it; the directory with the device's files."""
    env = {**os.environ, "EDGEWISE_API_TOKEN": cloud.token, "EDGEWISE_API_URL": cloud.api_url}
    command = [
        sys.executable,
        "-m",
        "edgewise.cli",
        "device",
        "bootstrap",
        "--thing",
        thing,
        "--out",
        str(out),
    ]
    subprocess.run([*command, "--data", str(cloud.data_dir)], env=env, check=True, capture_output=True)
    acl = cloud.data_dir / "broker" / "devices.acl"
    wait_for(
        lambda: acl.exists() and f"user {thing}" in acl.read_text(),
        timeout=TIMEOUT_S,
        what=f"{thing} in the ACL",
    )
    return out


def mqtt_round_trips(cloud: Cloud, directory: Path, count: int) -> tuple[list[float], list[float]]:
    probe = open_probe(cloud, bootstrap(cloud, DEVICE, directory / "device"))
    try:
        for number in range(min(BLOCK, count)):  # warm-up: connections, caches, the shadow's row
            probe.shadow_update(-1 - number)
            probe.plain_publish(-1 - number)
        shadow: list[float] = []
        plain: list[float] = []
        while len(shadow) < count:
            block = range(len(shadow), min(count, len(shadow) + BLOCK))
            shadow += [probe.shadow_update(number) for number in block]
            plain += [probe.plain_publish(number) for number in block]
        return shadow, plain
    finally:
        probe.close()


def sync_round_trips(cloud: Cloud, directory: Path, count: int) -> list[float]:
    from awsiot import greengrasscoreipc
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    files = bootstrap(cloud, CORE, directory / "core")
    recipes = directory / "recipes"
    recipes.mkdir()
    options = ("--thing-name", CORE, "--config", str(files / "edgewise.yaml"))
    with running_runtime(directory / "root", *options) as runtime:
        configuration = {"synchronize": {"coreThing": {"classic": False, "namedShadows": [SHADOW]}}}
        deployment = runtime.call(
            "CreateLocalDeployment",
            {
                "recipeDirectoryPath": str(recipes),
                "rootComponentVersionsToAdd": {"aws.greengrass.ShadowManager": "2.3.0"},
                "componentToConfiguration": {"aws.greengrass.ShadowManager": {"MERGE": configuration}},
            },
        )["deploymentId"]
        if runtime.wait_deployment(deployment) != "SUCCEEDED":
            raise RuntimeError("the ShadowManager deployment failed")
        token = json.loads(runtime.paths.cli_token_file.read_text())["cli_auth_token"]
        ipc = GreengrassCoreIPCClientV2(
            client=greengrasscoreipc.connect(ipc_socket=str(runtime.paths.ipc_socket), authtoken=token)
        )
        heard: dict[int, float] = {}
        condition = threading.Condition()

        def on_delta(event: Any) -> None:
            number = json.loads(event.binary_message.message)["state"].get("n")
            with condition:
                heard[number] = time.perf_counter()
                condition.notify_all()

        topic = f"$aws/things/{CORE}/shadow/name/{SHADOW}/update/delta"
        _, operation = ipc.subscribe_to_topic(topic=topic, on_stream_event=on_delta)
        try:
            with cloud.api() as api:

                def round_trip(number: int) -> float:
                    started = time.perf_counter()
                    answer = api.post(
                        f"/things/{CORE}/shadow",
                        params={"name": SHADOW},
                        json={"state": {"desired": {"n": number}}},
                    )
                    answer.raise_for_status()
                    with condition:
                        if not condition.wait_for(lambda: number in heard, TIMEOUT_S):
                            raise TimeoutError(f"the delta of round {number} never reached the subscriber")
                        return heard[number] - started

                # Warm-up. The sync may start after the first change: its first full sync still pulls it.
                for number in range(-5, 0):
                    round_trip(number)
                return [round_trip(number) for number in range(count)]
        finally:
            operation.close()
            ipc.close()


def milliseconds(values: list[float]) -> tuple[str, str]:
    ordered = sorted(values)
    return f"{percentile(ordered, 0.5) * 1000:.2f}", f"{percentile(ordered, 0.99) * 1000:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count", type=int, default=1000, help="round trips of each kind over MQTT (default 1000)"
    )
    parser.add_argument(
        "--sync-count", type=int, default=200, help="REST-to-delta round trips through the sync (default 200)"
    )
    args = parse_args(parser, argv, quick={"count": 20, "sync_count": 5})
    exit_on_sigterm()
    print_machine()
    with tempfile.TemporaryDirectory(prefix="edgewise-shadow-bench-") as temporary:
        directory = Path(temporary)
        with cloud_up(directory / "cloud") as cloud:
            shadow, plain = mqtt_round_trips(cloud, directory, args.count)
            synced = sync_round_trips(cloud, directory, args.sync_count)
    rows = [
        ["shadow update -> update/accepted", str(len(shadow)), *milliseconds(shadow)],
        ["plain publish -> own subscription", str(len(plain)), *milliseconds(plain)],
        ["REST desired -> local update/delta (sync)", str(len(synced)), *milliseconds(synced)],
    ]
    print()
    print_table(["round trip", "n", "p50 ms", "p99 ms"], rows)
    shadow_p50 = percentile(sorted(shadow), 0.5)
    plain_p50 = percentile(sorted(plain), 0.5)
    print()
    print(f"shadow update / plain publish (p50): {ratio(shadow_p50, plain_p50)}x")


if __name__ == "__main__":
    run_main(main)
