"""What the pub/sub benchmarks share: one measured case, run either as Edgewise components talking over IPC
or as plain processes talking to a Mosquitto of our own, and the numbers read back from their files.

Both sides run ``pubsub_client.py``: over IPC as components deployed on a runtime (awsiotsdk v2 client),
over MQTT as processes using paho-mqtt. Every process is stopped on the way out, whatever happens.
"""

from __future__ import annotations

import array
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _harness import (
    BenchRuntime,
    free_port,
    print_table,
    process_group,
    running_runtime,
    wait_for,
    write_client_component,
)

CLIENT = Path(__file__).with_name("pubsub_client.py")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TOPIC = "bench/pubsub/data"
#: How long one case may take, from deployment to the last subscriber's results.
CASE_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Case:
    """One measurement: ``count`` messages of ``size`` bytes from ``publishers`` to ``subscribers``.

    With several publishers each sends its share of ``count`` (the first ``count % publishers`` one more).
    """

    size: int
    count: int
    subscribers: int = 1
    window: int = 256  #: publishes in flight (unacknowledged) at once; QoS 0 MQTT has no acknowledgement
    rate: float = 0.0  #: messages per second; 0 publishes as fast as the window allows
    qos: int = 0  #: MQTT only
    publishers: int = 1

    def share(self, publisher: int) -> int:
        """How many of the ``count`` messages publisher number ``publisher`` sends."""
        return self.count // self.publishers + (1 if publisher < self.count % self.publishers else 0)


@dataclass(frozen=True)
class Outcome:
    """What the subscribers of one case received, together."""

    sent: int  #: messages published
    receivers: int  #: subscribers
    received: int  #: over all subscribers
    out_of_order: int
    delivered_per_s: float  #: received / (last receipt - first send)
    p50_ms: float
    p99_ms: float
    server_cpu_s: float = 0.0  #: CPU time the runtime (or the broker) used from first publish to last result

    @property
    def lost(self) -> int:
        return self.sent * self.receivers - self.received

    @property
    def server_cpu_us_per_delivery(self) -> float:
        return self.server_cpu_s / self.received * 1e6 if self.received else float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time that process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def collect(results: list[Path], sent: int, server_cpu_s: float = 0.0) -> Outcome:
    """Merge the subscribers' result files."""
    summaries = [json.loads(path.read_text()) for path in results]
    latencies: array.array[int] = array.array("q")
    for path in results:
        with path.with_name(path.name + ".latencies").open("rb") as data:
            latencies.frombytes(data.read())
    ordered = sorted(latencies)
    received = sum(s["received"] for s in summaries)
    first = min((s["first_sent_ns"] for s in summaries if s["received"]), default=0)
    last = max((s["last_received_ns"] for s in summaries if s["received"]), default=0)
    return Outcome(
        sent=sent,
        receivers=len(summaries),
        received=received,
        out_of_order=sum(s["out_of_order"] for s in summaries),
        delivered_per_s=received / ((last - first) / 1e9) if last > first else 0.0,
        p50_ms=_percentile(ordered, 0.50) / 1e6,
        p99_ms=_percentile(ordered, 0.99) / 1e6,
        server_cpu_s=server_cpu_s,
    )


def _percentile(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))])


def client_arguments(
    role: str, case: Case, *, out: Path, ready: Path | None, wait: list[Path], publisher: int = 0
) -> list[str]:
    """The ``pubsub_client.py`` arguments after the transport, for one role in ``case``."""
    if role == "subscribe":
        assert ready is not None
        return [f"--topic={TOPIC}", f"--count={case.count}", f"--out={out}", f"--ready={ready}"]
    # Each publisher paces its own share: together they publish at the case's rate.
    return [
        f"--topic={TOPIC}",
        f"--count={case.share(publisher)}",
        f"--out={out}",
        f"--publisher={publisher}",
        f"--size={case.size}",
        f"--window={case.window}",
        f"--rate={case.rate / case.publishers:g}",
        "--wait",
        *map(str, wait),
    ]


# -- over MQTT ---------------------------------------------------------------------------------------------


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Broker:
    port: int
    pid: int


@contextmanager
def mosquitto(directory: Path) -> Iterator[Broker]:
    """A Mosquitto with default limits on a free localhost port."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        f"user {getpass.getuser()}\n"
        "log_dest stderr\n"
        "log_type error\n"
    )
    with (
        (directory / "mosquitto.log").open("ab") as log,
        process_group(
            [MOSQUITTO, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
        ) as broker,
    ):
        wait_for(lambda: broker.poll() is None and _accepts(port), timeout=20, what="Mosquitto to listen")
        yield Broker(port, broker.pid)


def run_mqtt(
    case: Case, broker: Broker, directory: Path, *, while_waiting: Callable[[], None] | None = None
) -> Outcome:
    """One case with paho-mqtt clients through ``broker``; ``while_waiting`` is called as results are awaited."""
    directory.mkdir(parents=True)
    transport = ["mqtt", f"--port={broker.port}", f"--qos={case.qos}"]
    results = [directory / f"sub{n}.json" for n in range(case.subscribers)]
    ready = [directory / f"sub{n}.ready" for n in range(case.subscribers)]
    with ExitStack() as stack:
        for result, flag in zip(results, ready, strict=True):
            arguments = client_arguments("subscribe", case, out=result, ready=flag, wait=[])
            stack.enter_context(_client("subscribe", transport, arguments, directory))
        go = directory / "go"
        publishers = []
        for n in range(case.publishers):
            arguments = client_arguments(
                "publish", case, out=directory / f"pub{n}.json", ready=None, wait=[*ready, go], publisher=n
            )
            publisher = _client("publish", transport, arguments, directory, log=f"publish{n}")
            publishers.append(stack.enter_context(publisher))
        _start_publisher(ready, go)
        cpu = cpu_seconds(broker.pid)
        _wait_results(results, publishers, while_waiting)
        cpu = cpu_seconds(broker.pid) - cpu
    return collect(results, case.count, cpu)


@contextmanager
def _client(
    role: str, transport: list[str], arguments: list[str], directory: Path, *, log: str | None = None
) -> Iterator[Any]:
    with (directory / f"{log or role}.log").open("ab") as output:
        argv = [sys.executable, str(CLIENT), role, *transport, *arguments]
        with process_group(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output) as process:
            yield process


def _start_publisher(ready: list[Path], go: Path) -> None:
    """Let the publisher start once every subscriber is ready and nothing else (a deployment) is going on."""
    wait_for(
        lambda: all(path.exists() for path in ready),
        timeout=CASE_TIMEOUT_S,
        what="the subscribers to subscribe",
        interval=0.01,
    )
    go.touch()


def _wait_results(
    results: list[Path], processes: list[Any], while_waiting: Callable[[], None] | None = None
) -> None:
    def finished() -> bool:
        if while_waiting is not None:
            while_waiting()
        for process in processes:
            if process.poll() not in (None, 0):
                raise RuntimeError(f"A benchmark client exited with code {process.returncode}")
        return all(path.exists() for path in results)

    wait_for(finished, timeout=CASE_TIMEOUT_S, what="the subscribers' results", interval=0.05)


# -- over IPC ------------------------------------------------------------------------------------------------


class IpcBench:
    """Runs cases as components on one runtime; each case's components replace the previous case's."""

    def __init__(self, runtime: BenchRuntime, directory: Path) -> None:
        self.runtime = runtime
        self.directory = directory
        self._cases = 0
        self._deployed: list[str] = []

    def run(self, case: Case, *, while_waiting: Callable[[], None] | None = None) -> Outcome:
        """Deploy and run ``case``; ``while_waiting`` is called as the results are awaited."""
        self._cases += 1
        case_dir = self.directory / f"ipc-case{self._cases}"
        recipes, artifacts = case_dir / "recipes", case_dir / "artifacts"
        results = [case_dir / f"sub{n}.json" for n in range(case.subscribers)]
        ready = [case_dir / f"sub{n}.ready" for n in range(case.subscribers)]
        names: list[str] = []
        for n, (result, flag) in enumerate(zip(results, ready, strict=True)):
            name = f"bench.Sub{self._cases}x{n}"
            arguments = client_arguments("subscribe", case, out=result, ready=flag, wait=[])
            write_client_component(recipes, artifacts, name, CLIENT, ["subscribe", "ipc", *arguments])
            names.append(name)
        go = case_dir / "go"
        for n in range(case.publishers):
            name = f"bench.Pub{self._cases}x{n}"
            arguments = client_arguments(
                "publish", case, out=case_dir / f"pub{n}.json", ready=None, wait=[*ready, go], publisher=n
            )
            write_client_component(recipes, artifacts, name, CLIENT, ["publish", "ipc", *arguments])
            names.append(name)
        self.deploy(recipes, artifacts, names)
        _start_publisher(ready, go)
        cpu = cpu_seconds(self.runtime.pid)
        _wait_results(results, [], while_waiting)
        return collect(results, case.count, cpu_seconds(self.runtime.pid) - cpu)

    def deploy(self, recipes: Path, artifacts: Path, names: list[str]) -> None:
        """Deploy ``names`` (all version 1.0.0), removing what the previous call deployed."""
        request = {
            "recipeDirectoryPath": str(recipes),
            "artifactsDirectoryPath": str(artifacts),
            "rootComponentVersionsToAdd": dict.fromkeys(names, "1.0.0"),
            "rootComponentsToRemove": self._deployed,
        }
        deployment = str(self.runtime.call("CreateLocalDeployment", request)["deploymentId"])
        status = self.runtime.wait_deployment(deployment, interval=0.05)
        if status != "SUCCEEDED":
            raise RuntimeError(f"Deployment {deployment} of {len(names)} benchmark components ended {status}")
        self._deployed = names


# -- comparing the two -------------------------------------------------------------------------------------

TRANSPORTS = ("IPC (Edgewise)", "MQTT QoS 0 (Mosquitto)", "MQTT QoS 1 (Mosquitto)")
#: Short names for ``--transports``, in the order of :data:`TRANSPORTS`.
TRANSPORT_CHOICES = ("ipc", "qos0", "qos1")
Results = dict[tuple[str, str], Outcome]
"""Outcomes by (transport, case label)."""


def compare(
    planned: list[tuple[str, Case]],
    *,
    directory: Path,
    env: dict[str, str] | None,
    repeat: Callable[[str], int],
    transports: tuple[str, ...] = TRANSPORT_CHOICES,
) -> Results:
    """Run every (label, case) over IPC on one runtime, then over one Mosquitto at QoS 0 and QoS 1.

    A case runs ``repeat(label)`` times per transport; the run with the median throughput is kept.
    ``transports`` (names from :data:`TRANSPORT_CHOICES`) leaves the others out.
    """
    results: Results = {}
    if "ipc" in transports:
        with running_runtime(directory / "root", env=env) as runtime:
            ipc = IpcBench(runtime, directory)
            for label, case in planned:
                results[TRANSPORTS[0], label] = median_run([ipc.run(case) for _ in range(repeat(label))])
    levels = [qos for qos in (0, 1) if f"qos{qos}" in transports]
    if not levels:
        return results
    with mosquitto(directory / "mosquitto") as broker:
        for index, (label, case) in enumerate(planned):
            for qos in levels:
                runs = [
                    run_mqtt(replace(case, qos=qos), broker, directory / f"mqtt-{index}-qos{qos}-{n}")
                    for n in range(repeat(label))
                ]
                results[TRANSPORTS[1 + qos], label] = median_run(runs)
    return results


def median_run(runs: list[Outcome]) -> Outcome:
    """The run with the median throughput (the lower middle one for an even count)."""
    return sorted(runs, key=lambda outcome: outcome.delivered_per_s)[(len(runs) - 1) // 2]


def print_comparison(planned: list[tuple[str, Case]], results: Results) -> None:
    """The outcomes, then Edgewise's ratio to each baseline."""
    print_table(
        ["case", "transport", "pubs", "subs", "received", "msgs/s", "p50 ms", "p99 ms", "server CPU µs/msg"],
        [
            _row(transport, label, case, results[transport, label])
            for label, case in planned
            for transport in TRANSPORTS
            if (transport, label) in results
        ],
    )
    rows = []
    for label, _case in planned:
        ours = results.get((TRANSPORTS[0], label))
        for baseline in TRANSPORTS[1:]:
            theirs = results.get((baseline, label))
            if ours is None or theirs is None:
                continue
            rows.append(
                [
                    label,
                    baseline,
                    _ratio(ours.delivered_per_s, theirs.delivered_per_s),
                    _ratio(ours.p50_ms, theirs.p50_ms),
                    _ratio(ours.p99_ms, theirs.p99_ms),
                    _ratio(ours.server_cpu_us_per_delivery, theirs.server_cpu_us_per_delivery),
                ]
            )
    if rows:
        print()
        print(
            "Edgewise IPC relative to each baseline (throughput: higher is better; latency: lower is better)"
        )
        print_table(["case", "vs", "msgs/s", "p50", "p99", "server CPU/msg"], rows)


def _row(transport: str, label: str, case: Case, outcome: Outcome) -> list[str]:
    return [
        label,
        transport,
        str(case.publishers),
        str(case.subscribers),
        f"{outcome.received}/{outcome.sent * outcome.receivers}",
        f"{outcome.delivered_per_s:,.0f}",
        f"{outcome.p50_ms:.2f}",
        f"{outcome.p99_ms:.2f}",
        f"{outcome.server_cpu_us_per_delivery:.0f}",
    ]


def size_text(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def _ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}" if baseline else "n/a"
