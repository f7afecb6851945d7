"""Benchmark: a burst of devices connecting with mutual TLS to the cloud's MQTT gateway, beside the same
burst against the same Mosquitto with authorization turned off, measured in the same run.

Every device has its own EC P-256 certificate from the benchmark's CA (CN = thing name). The gateway is the
managed Mosquitto (``MosquittoBroker``) with the ACL file rendered from the default device policy for every
device; the baseline runs the same rendered configuration without ``acl_file``. Both stay up for the whole
run and take turns, in alternating order, ``--repeat`` times; the run with the median time to all connected
is shown.

On "go", each of ``--processes`` client workers starts all of its paho-mqtt clients (MQTT 5, one network
thread each) as fast as it can; a connect's latency is from its start to its CONNACK. "time to all" is from
the first start to the last CONNACK over all workers, "connects/s" is devices over that time. Broker and
client CPU time over the burst are reported: the clients share the machine's cores with the broker.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import exit_on_sigterm, median, parse_args, print_machine, print_table, run_main
from gateway_common import (
    HOST,
    RUN_TIMEOUT_S,
    Broker,
    Pki,
    alternate,
    both_brokers,
    device_specs,
    make_pki,
    percentile,
    ratio,
    split,
    start_workers,
    wait_results,
)


@dataclass(frozen=True)
class Burst:
    """The outcome of one connect burst."""

    devices: int
    connected: int
    errors: dict[str, int]
    time_to_all_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    broker_cpu_s: float
    client_cpu_s: float

    @property
    def connects_per_s(self) -> float:
        return self.connected / self.time_to_all_s if self.time_to_all_s else 0.0


def run_burst(broker: Broker, pki: Pki, processes: int, directory: Path) -> Burst:
    """Connect every device of ``pki`` to ``broker`` at once; disconnect them all afterwards."""
    specs: list[dict[str, Any]] = [
        {
            "host": HOST,
            "port": broker.port,
            "ca": str(pki.ca_file),
            "devices": device_specs(pki, indices),
            "timeout": RUN_TIMEOUT_S,
        }
        for indices in split(pki.devices, processes)
    ]
    with start_workers("connect", specs, directory) as workers:
        cpu = broker.cpu_seconds()
        for worker in workers:
            worker.send("go")
        results = wait_results(workers)
        broker_cpu = broker.cpu_seconds() - cpu
        for worker in workers:
            worker.send("stop")
        for worker in workers:
            worker.process.wait(timeout=60)
    started = [start for result in results for start in result["started"]]
    connacked = [ack for result in results for ack in result["connacked"] if ack is not None]
    latencies = sorted(
        (ack - start) / 1e6
        for result in results
        for start, ack in zip(result["started"], result["connacked"], strict=True)
        if ack is not None
    )
    errors: dict[str, int] = {}
    for result in results:
        for error in result["errors"]:
            if error is not None:
                errors[error] = errors.get(error, 0) + 1
    return Burst(
        devices=len(started),
        connected=len(connacked),
        errors=errors,
        time_to_all_s=(max(connacked) - min(started)) / 1e9 if connacked else float("nan"),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else float("nan"),
        broker_cpu_s=broker_cpu,
        client_cpu_s=sum(result["client_cpu_s"] for result in results),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=500, help="devices connecting in the burst (500)")
    parser.add_argument("--processes", type=int, default=4, help="client worker processes (4)")
    parser.add_argument("--repeat", type=int, default=5, help="bursts per broker; median shown (5)")
    args = parse_args(parser, argv, quick={"devices": 2, "processes": 1, "repeat": 1})
    if min(args.devices, args.processes, args.repeat) < 1:
        parser.error("--devices, --processes and --repeat must be positive")
    exit_on_sigterm()

    print(f"== MQTT gateway: {args.devices} devices connecting with mutual TLS at once ==")
    print_machine()
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-gateway-connect-") as tmp:
        pki = make_pki(Path(tmp) / "pki", args.devices)
        runs: dict[str, list[Burst]] = {}
        with both_brokers(Path(tmp), pki) as brokers:
            for run in range(args.repeat):
                for broker in alternate(brokers, run):
                    directory = Path(tmp) / f"run{run}-{broker.port}"
                    burst = run_burst(broker, pki, args.processes, directory)
                    runs.setdefault(broker.label, []).append(burst)
                    print(
                        f"  {broker.label}: {burst.connected}/{burst.devices} connected in "
                        f"{burst.time_to_all_s:.2f} s, p50 {burst.p50_ms:.0f} ms, p99 {burst.p99_ms:.0f} ms",
                        flush=True,
                    )
    shown = {label: _median_burst(bursts) for label, bursts in runs.items()}
    print()
    print_table(
        [
            "broker",
            "connected",
            "time to all s",
            "connects/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "broker CPU ms/connect",
            "client CPU ms/connect",
            "all runs: time to all s",
            "all runs: broker ms/connect",
        ],
        [
            [
                label,
                f"{burst.connected}/{burst.devices}",
                f"{burst.time_to_all_s:.2f}",
                f"{burst.connects_per_s:,.0f}",
                f"{burst.p50_ms:.0f}",
                f"{burst.p99_ms:.0f}",
                f"{burst.max_ms:.0f}",
                f"{burst.broker_cpu_s / burst.devices * 1e3:.2f}",
                f"{burst.client_cpu_s / burst.devices * 1e3:.2f}",
                ", ".join(f"{other.time_to_all_s:.2f}" for other in runs[label]),
                ", ".join(f"{other.broker_cpu_s / other.devices * 1e3:.2f}" for other in runs[label]),
            ]
            for label, burst in shown.items()
        ],
    )
    for label, burst in shown.items():
        for error, count in sorted(burst.errors.items()):
            print(f"  {label}: {count} failed: {error}")
    labels = [broker.label for broker in brokers]
    gateway, baseline = (shown[label] for label in labels)
    print()
    print("Gateway relative to Mosquitto without authorization (connects/s: higher is better)")
    print_table(
        ["connects/s", "time to all", "p50", "p99", "broker CPU/connect (median of all runs)"],
        [
            [
                ratio(gateway.connects_per_s, baseline.connects_per_s),
                ratio(gateway.time_to_all_s, baseline.time_to_all_s),
                ratio(gateway.p50_ms, baseline.p50_ms),
                ratio(gateway.p99_ms, baseline.p99_ms),
                ratio(*(median([b.broker_cpu_s / b.devices for b in runs[label]]) for label in labels)),
            ]
        ],
    )


def _median_burst(bursts: list[Burst]) -> Burst:
    """The burst with the median time to all connected (the lower middle one for an even count)."""
    middle = median([burst.time_to_all_s for burst in bursts])
    return min(bursts, key=lambda burst: (abs(burst.time_to_all_s - middle), burst.time_to_all_s))


if __name__ == "__main__":
    run_main(main)
