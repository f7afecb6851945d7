"""What the MQTT gateway benchmarks share: device certificates, the two brokers compared, and the client
worker processes that drive them.

The two brokers are the same Mosquitto binary with the same mutual-TLS listener (CA, CRL, server certificate,
``use_identity_as_username``) and the same worker listener:

- "gateway": :class:`~edgewise.cloud.broker.MosquittoBroker` as the cloud runs it, with the ACL file rendered
  from the default device policy (``render_for_thing``) for every benchmark device;
- "no authz": the same rendered ``mosquitto.conf`` without its ``acl_file`` line, so every authenticated
  client may use every topic.

Clients are paho-mqtt 2 (MQTT 5) in a few worker processes, one paho network thread per device; each worker
is this file run as a script (``connect`` or ``publish``) and reports its own CPU time. Everything runs on
this machine, so the clients share its cores with the broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from _harness import free_port, process_group, wait_for
from edgewise.cloud.broker import (
    BrokerSettings,
    DeviceListenerSettings,
    DevicePermissions,
    MosquittoBroker,
    WorkerListenerSettings,
    render_config,
    render_password_file,
    to_device_permissions,
    write_acl,
)
from edgewise.cloud.identity import (
    CertificateAuthority,
    default_device_policy,
    render_for_thing,
    validate_policy,
)
from pubsub_common import cpu_seconds

HOST = "127.0.0.1"
#: How long one measured run (a burst, or one publish case) may take before it counts its stragglers as failed.
RUN_TIMEOUT_S = 120.0
GATEWAY = "gateway (per-device ACL)"
BASELINE = "Mosquitto, no authz"


def thing_name(index: int) -> str:
    return f"bench-device-{index:04d}"


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0-1) of an ascending sequence (nearest rank); NaN when it is empty."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}" if baseline else "n/a"


# -- certificates ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """The CA, its (empty) CRL, the broker's server certificate and one certificate per device, as files."""

    directory: Path
    ca_file: Path
    crl_file: Path
    server_certificate: Path
    server_key: Path
    devices: int

    def device_files(self, index: int) -> tuple[Path, Path]:
        """(certificate, private key) of device ``index``."""
        stem = self.directory / thing_name(index)
        return stem.with_suffix(".crt"), stem.with_suffix(".key")


def make_pki(directory: Path, devices: int) -> Pki:
    """A fresh CA issuing ``devices`` EC P-256 device certificates (CN = thing name) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority.create("Edgewise Benchmark CA")
    server, server_key = authority.server_certificate(["localhost", HOST])
    pki = Pki(
        directory=directory,
        ca_file=directory / "ca.pem",
        crl_file=directory / "crl.pem",
        server_certificate=directory / "server.crt",
        server_key=directory / "server.key",
        devices=devices,
    )
    _write_private(pki.ca_file, authority.certificate_pem)
    _write_private(pki.crl_file, authority.build_crl([]))
    _write_private(pki.server_certificate, server.certificate_pem)
    _write_private(pki.server_key, server_key)
    for index in range(devices):
        issued, key = authority.issue_with_new_key(thing_name(index))
        certificate_file, key_file = pki.device_files(index)
        _write_private(certificate_file, issued.certificate_pem)
        _write_private(key_file, key)
    return pki


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


# -- the two brokers --------------------------------------------------------------------------------------------


def default_policy_acl(devices: int) -> list[DevicePermissions]:
    """The ACL entries of ``devices`` things that each have only the default device policy."""
    policy = validate_policy(default_device_policy())
    rendered = (render_for_thing([policy], thing_name(index)) for index in range(devices))
    return [to_device_permissions(entry) for entry in rendered if entry.can_connect]


@dataclass(frozen=True)
class Broker:
    """A running broker under test."""

    label: str
    pid: int
    port: int
    settings: BrokerSettings

    def cpu_seconds(self) -> float:
        """The CPU time the broker process has used so far."""
        try:
            return cpu_seconds(self.pid)
        except FileNotFoundError:
            raise RuntimeError(
                f"{self.label}: Mosquitto pid {self.pid} is gone (it crashed or was restarted); "
                f"see {self.settings.data_dir}"
            ) from None


def broker_settings(directory: Path, pki: Pki) -> BrokerSettings:
    """The broker settings of ``edgewise cloud up``, on free loopback ports."""
    return BrokerSettings(
        data_dir=directory,
        devices=DeviceListenerSettings(
            port=free_port(),
            host=HOST,
            cafile=pki.ca_file,
            certfile=pki.server_certificate,
            keyfile=pki.server_key,
            crlfile=pki.crl_file,
        ),
        workers=WorkerListenerSettings.generate(free_port()),
        # Started as root, Mosquitto would switch to 'mosquitto', which cannot read our files.
        run_as_user="root" if os.geteuid() == 0 else None,
    )


@contextmanager
def managed_gateway(directory: Path, pki: Pki) -> Iterator[Broker]:
    """The cloud's managed broker with the default device policy's ACL for every device; stopped on exit."""
    settings = broker_settings(directory, pki)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_acl(settings.acl_file, default_policy_acl(pki.devices))
    # MosquittoBroker is asyncio-based; its loop lives in a thread while this script blocks on clients.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    thread.start()
    broker = MosquittoBroker(settings)
    try:
        asyncio.run_coroutine_threadsafe(broker.start(), loop).result(timeout=60)
        pid = broker.statistics().pid
        assert pid is not None, "the managed broker reports no process after starting"
        yield Broker(GATEWAY, pid, settings.devices.port, settings)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(timeout=60)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()


@contextmanager
def unauthorized_broker(directory: Path, pki: Pki) -> Iterator[Broker]:
    """The same Mosquitto configuration without the ACL file (authorization off); killed on exit."""
    settings = broker_settings(directory, pki)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.persistence_dir.mkdir(exist_ok=True, mode=0o700)
    lines = [line for line in render_config(settings).splitlines() if not line.startswith("acl_file ")]
    assert len(lines) == len(render_config(settings).splitlines()) - 1, "the config has no acl_file line"
    assert settings.workers is not None
    passwords = {settings.workers.username: settings.workers.password}
    _write_private(settings.password_file, render_password_file(passwords))
    _write_private(settings.config_file, "\n".join(lines) + "\n")
    with (
        (directory / "mosquitto.stderr").open("ab") as log,
        process_group(
            ["/usr/sbin/mosquitto", "-c", str(settings.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        ) as process,
    ):
        context = ssl.create_default_context(cafile=str(pki.ca_file))

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"Mosquitto exited with code {process.returncode}; see {directory}")
            return _tls_answers(settings.devices.port, context)

        wait_for(listening, timeout=20, what="the unauthorized Mosquitto to answer TLS", interval=0.05)
        yield Broker(BASELINE, process.pid, settings.devices.port, settings)


@contextmanager
def both_brokers(directory: Path, pki: Pki) -> Iterator[tuple[Broker, Broker]]:
    """The gateway and the baseline, both running for the whole comparison."""
    with (
        managed_gateway(directory / "gateway", pki) as gateway,
        unauthorized_broker(directory / "baseline", pki) as baseline,
    ):
        yield gateway, baseline


def _tls_answers(port: int, context: ssl.SSLContext) -> bool:
    try:
        with (
            socket.create_connection((HOST, port), timeout=1) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            tls.do_handshake()
    except ssl.SSLError:
        return True  # no client certificate: an alert still proves the TLS listener is up
    except OSError:
        return False
    return True


def alternate(brokers: tuple[Broker, Broker], run: int) -> tuple[Broker, Broker]:
    """Both brokers, the first one first on even runs: neither always runs on a warmer machine."""
    return brokers if run % 2 == 0 else (brokers[1], brokers[0])


# -- client workers (coordinator side) -------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    ready: Path
    result: Path
    log: Path

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def check_alive(self) -> None:
        code = self.process.poll()
        if code not in (None, 0):
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"A benchmark client worker exited with code {code}:\n{tail}")


@contextmanager
def start_workers(role: str, specs: Sequence[dict[str, Any]], directory: Path) -> Iterator[list[Worker]]:
    """One worker process per spec, each in its own process group, killed on the way out; returns once every
    worker has connected its clients (publish) or prepared them (connect) and waits for ``go``."""
    directory.mkdir(parents=True, exist_ok=True)
    workers: list[Worker] = []
    with ExitStack() as stack:
        for index, spec in enumerate(specs):
            ready, result, log = (
                directory / f"worker{index}.{suffix}" for suffix in ("ready", "json", "log")
            )
            spec_file = directory / f"worker{index}.spec.json"
            spec_file.write_text(json.dumps({**spec, "ready": str(ready), "out": str(result)}))
            stream = stack.enter_context(log.open("ab"))
            process = stack.enter_context(
                process_group(
                    [sys.executable, __file__, role, str(spec_file)],
                    stdin=subprocess.PIPE,
                    stdout=stream,
                    stderr=stream,
                )
            )
            workers.append(Worker(process, ready, result, log))

        def all_ready() -> bool:
            for worker in workers:
                worker.check_alive()
            return all(worker.ready.exists() for worker in workers)

        wait_for(all_ready, timeout=RUN_TIMEOUT_S, what=f"{len(workers)} {role} workers", interval=0.01)
        yield workers


def wait_results(workers: Sequence[Worker]) -> list[dict[str, Any]]:
    def finished() -> bool:
        for worker in workers:
            worker.check_alive()
        return all(worker.result.exists() for worker in workers)

    wait_for(finished, timeout=RUN_TIMEOUT_S + 30, what="the client workers' results", interval=0.005)
    return [json.loads(worker.result.read_text()) for worker in workers]


def split(count: int, parts: int) -> list[range]:
    """``range(count)`` cut into ``parts`` nearly equal consecutive slices (none empty)."""
    parts = max(1, min(parts, count))
    bounds = [count * part // parts for part in range(parts + 1)]
    return [range(bounds[part], bounds[part + 1]) for part in range(parts)]


def device_specs(pki: Pki, indices: range) -> list[list[str]]:
    specs = []
    for index in indices:
        certificate, key = pki.device_files(index)
        specs.append([thing_name(index), str(certificate), str(key)])
    return specs


# -- client workers (worker side) ----------------------------------------------------------------------------


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _new_client(spec: dict[str, Any], device: list[str]) -> paho.Client:
    thing, certificate, key = device
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing, protocol=MQTTProtocolVersion.MQTTv5)
    client.tls_set(ca_certs=spec["ca"], certfile=certificate, keyfile=key)
    return client


def _write_result(spec: dict[str, Any], result: dict[str, Any]) -> None:
    out = Path(spec["out"])
    temporary = out.with_suffix(".tmp")
    temporary.write_text(json.dumps(result))
    temporary.replace(out)


def _await_line(expected: str) -> None:
    line = sys.stdin.readline().strip()
    if line != expected:
        raise SystemExit(f"expected {expected!r} from the coordinator, got {line!r}")


def connect_worker(spec: dict[str, Any]) -> None:
    """Connect every device at once on ``go``; report each one's start and CONNACK time (monotonic ns)."""
    devices: list[list[str]] = spec["devices"]
    clients = [_new_client(spec, device) for device in devices]
    started = [0] * len(clients)
    connacked: list[int | None] = [None] * len(clients)
    errors: list[str | None] = [None] * len(clients)
    done = threading.Condition()
    outstanding = [len(clients)]

    def settle(index: int, error: str | None) -> None:
        with done:
            if connacked[index] is None and errors[index] is None:
                if error is None:
                    connacked[index] = time.monotonic_ns()
                else:
                    errors[index] = error
                outstanding[0] -= 1
                done.notify_all()

    for index, client in enumerate(clients):

        def on_connect(
            client: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object, index: int = index
        ) -> None:
            settle(index, str(reason) if reason.is_failure else None)
            if reason.is_failure:
                client.disconnect()

        def on_connect_fail(client: paho.Client, _u: object, index: int = index) -> None:
            settle(index, "TCP or TLS connection failed")
            client.disconnect()

        client.on_connect = on_connect
        client.on_connect_fail = on_connect_fail
    Path(spec["ready"]).touch()
    _await_line("go")
    cpu = _cpu_now()
    for index, client in enumerate(clients):
        started[index] = time.monotonic_ns()
        client.connect_async(spec["host"], spec["port"], keepalive=120, clean_start=True)
        client.loop_start()
    with done:
        done.wait_for(lambda: outstanding[0] == 0, timeout=spec["timeout"])
    cpu = _cpu_now() - cpu
    for index in range(len(clients)):
        settle(index, f"no CONNACK within {spec['timeout']} s")
    _write_result(spec, {"started": started, "connacked": connacked, "errors": errors, "client_cpu_s": cpu})
    _await_line("stop")
    for client in clients:
        client.disconnect()
    for client in clients:
        client.loop_stop()


class _Device:
    """One publishing device: keeps ``window`` messages to itself in flight, sends the next on each receipt."""

    def __init__(self, client: paho.Client, topic: str, spec: dict[str, Any], finished: threading.Semaphore):
        self.client = client
        self.topic = topic
        self.count: int = spec["count"]
        self.window: int = spec["window"]
        self.qos: int = spec["qos"]
        self.padding = b"\0" * (spec["size"] - 8)
        self.finished = finished
        self.sent = 0
        self.received = 0
        self.first_sent_ns = 0
        self.last_received_ns = 0
        self.latencies: list[int] = []
        #: Set on SUBACK, or on a refusal, which ``error`` then describes.
        self.subscribed = threading.Event()
        self.error: str | None = None
        self._sending = threading.Lock()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message

    def _on_connect(
        self, client: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        if reason.is_failure:
            self._fail(f"the broker refused the connection: {reason}")
        else:
            client.subscribe(self.topic, qos=self.qos)

    def _on_subscribe(
        self, _c: paho.Client, _u: object, _mid: int, reasons: list[ReasonCode], _p: object
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            self._fail(f"the broker refused the subscription: {reasons}")
        self.subscribed.set()

    def _fail(self, error: str) -> None:
        self.error = f"{self.topic}: {error}"
        self.subscribed.set()

    def start(self) -> None:
        self.first_sent_ns = time.monotonic_ns()
        for _ in range(self.window):
            self._publish_next()

    def _publish_next(self) -> None:
        # start() (main thread) and _on_message (paho's thread) both send; count each message once.
        with self._sending:
            if self.sent >= self.count:
                return
            self.sent += 1
        self.client.publish(self.topic, struct.pack("<q", time.monotonic_ns()) + self.padding, qos=self.qos)

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        now = time.monotonic_ns()
        self.latencies.append(now - struct.unpack_from("<q", message.payload)[0])
        self.received += 1
        self.last_received_ns = now
        self._publish_next()
        if self.received == self.count:
            self.finished.release()


def publish_worker(spec: dict[str, Any]) -> None:
    """Connect and subscribe every device to its own telemetry topic, then on ``go`` publish flat out."""
    finished = threading.Semaphore(0)
    devices = []
    for device in spec["devices"]:
        client = _new_client(spec, device)
        devices.append(_Device(client, f"dt/{device[0]}/telemetry", spec, finished))
        client.connect(spec["host"], spec["port"], keepalive=120, clean_start=True)
        client.loop_start()
    deadline = time.monotonic() + spec["timeout"]
    for device in devices:
        if not device.subscribed.wait(timeout=max(0.0, deadline - time.monotonic())):
            raise SystemExit(f"{device.topic}: no SUBACK within {spec['timeout']} s")
        if device.error is not None:
            raise SystemExit(device.error)
    Path(spec["ready"]).touch()
    _await_line("go")
    cpu = _cpu_now()
    for device in devices:
        device.start()
    complete = 0
    while complete < len(devices) and finished.acquire(timeout=max(0.0, deadline - time.monotonic())):
        complete += 1
    cpu = _cpu_now() - cpu
    for device in devices:
        device.client.disconnect()
        device.client.loop_stop()
    _write_result(
        spec,
        {
            "sent": sum(device.sent for device in devices),
            "received": sum(device.received for device in devices),
            "first_sent_ns": min(device.first_sent_ns for device in devices),
            "last_received_ns": max(device.last_received_ns for device in devices),
            "latencies_ns": [latency for device in devices for latency in device.latencies],
            "client_cpu_s": cpu,
        },
    )


if __name__ == "__main__":
    role, spec_path = sys.argv[1:3]
    worker_spec = json.loads(Path(spec_path).read_text())
    {"connect": connect_worker, "publish": publish_worker}[role](worker_spec)
