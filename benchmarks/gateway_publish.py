"""Benchmark: publish throughput and latency through the cloud's MQTT gateway with per-device authorization,
beside the same Mosquitto with authorization turned off, at QoS 0 and QoS 1, measured in the same run.

``--devices`` devices (mutual TLS, one certificate each) connect through ``--processes`` client workers
(paho-mqtt 2, MQTT 5, one network thread per device). Each device subscribes to its own
``dt/<thing>/telemetry`` and publishes ``--count`` messages of ``--size`` bytes to it, keeping ``--window``
messages in flight: it sends the next one whenever one comes back. So every message passes the gateway's
ACL twice, as a publish (``write``) and as a delivery (``read``), and the default device policy allows both;
the baseline checks neither. Latency is from publish to receipt in the same process; "msgs/s" is messages
delivered over all devices from the first publish to the last receipt. Each case runs ``--repeat`` times per
broker, alternating; the run with the median throughput is shown. Broker and client CPU time are reported:
the clients share the machine's cores with the broker.
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
class Flow:
    """The outcome of one publish run over all devices."""

    sent: int
    received: int
    seconds: float
    p50_ms: float
    p99_ms: float
    broker_cpu_s: float
    client_cpu_s: float

    @property
    def per_s(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0

    def broker_us_per_message(self) -> float:
        return self.broker_cpu_s / self.received * 1e6 if self.received else float("nan")

    def client_us_per_message(self) -> float:
        return self.client_cpu_s / self.received * 1e6 if self.received else float("nan")


@dataclass(frozen=True)
class Plan:
    devices: int
    processes: int
    count: int
    window: int
    size: int


def run_flow(broker: Broker, pki: Pki, plan: Plan, qos: int, directory: Path) -> Flow:
    """Connect and subscribe every device, then let them all publish at once."""
    specs: list[dict[str, Any]] = [
        {
            "host": HOST,
            "port": broker.port,
            "ca": str(pki.ca_file),
            "devices": device_specs(pki, indices),
            "timeout": RUN_TIMEOUT_S,
            "qos": qos,
            "count": plan.count,
            "window": plan.window,
            "size": plan.size,
        }
        for indices in split(plan.devices, plan.processes)
    ]
    with start_workers("publish", specs, directory) as workers:
        cpu = broker.cpu_seconds()
        for worker in workers:
            worker.send("go")
        results = wait_results(workers)
        broker_cpu = broker.cpu_seconds() - cpu
        for worker in workers:
            worker.process.wait(timeout=60)
    latencies = sorted(latency / 1e6 for result in results for latency in result["latencies_ns"])
    first = min(result["first_sent_ns"] for result in results)
    last = max(result["last_received_ns"] for result in results)
    return Flow(
        sent=sum(result["sent"] for result in results),
        received=sum(result["received"] for result in results),
        seconds=(last - first) / 1e9,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        broker_cpu_s=broker_cpu,
        client_cpu_s=sum(result["client_cpu_s"] for result in results),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100, help="publishing devices (100)")
    parser.add_argument("--processes", type=int, default=4, help="client worker processes (4)")
    parser.add_argument("--count", type=int, default=400, help="messages per device per run (400)")
    parser.add_argument("--window", type=int, default=8, help="messages in flight per device (8)")
    parser.add_argument("--size", type=int, default=100, help="message bytes, at least 8 (100)")
    parser.add_argument("--qos", type=int, nargs="+", choices=[0, 1], default=[0, 1], help="QoS levels (0 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case and broker; median shown (3)")
    args = parse_args(parser, argv, quick={"devices": 2, "processes": 1, "count": 10, "repeat": 1})
    if min(args.devices, args.processes, args.count, args.window, args.repeat) < 1 or args.size < 8:
        parser.error("--devices, --processes, --count, --window, --repeat must be positive; --size >= 8")
    exit_on_sigterm()
    plan = Plan(args.devices, args.processes, args.count, args.window, args.size)

    print(
        f"== MQTT gateway: {plan.devices} devices publishing {plan.count} messages of {plan.size} B each "
        f"to themselves, {plan.window} in flight per device =="
    )
    print_machine()
    runs: dict[tuple[int, str], list[Flow]] = {}
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-gateway-publish-") as tmp:
        pki = make_pki(Path(tmp) / "pki", plan.devices)
        with both_brokers(Path(tmp), pki) as brokers:
            for qos in args.qos:
                for run in range(args.repeat):
                    for broker in alternate(brokers, run):
                        directory = Path(tmp) / f"qos{qos}-run{run}-{broker.port}"
                        flow = run_flow(broker, pki, plan, qos, directory)
                        runs.setdefault((qos, broker.label), []).append(flow)
                        print(
                            f"  QoS {qos} {broker.label}: {flow.received}/{flow.sent} in {flow.seconds:.2f} s",
                            flush=True,
                        )
    shown = {key: _median_flow(flows) for key, flows in runs.items()}
    print()
    print_table(
        [
            "QoS",
            "broker",
            "received",
            "msgs/s",
            "p50 ms",
            "p99 ms",
            "broker CPU µs/msg",
            "client CPU µs/msg",
            "all runs: msgs/s",
            "all runs: broker µs/msg",
        ],
        [
            [
                str(qos),
                label,
                f"{flow.received}/{flow.sent}",
                f"{flow.per_s:,.0f}",
                f"{flow.p50_ms:.1f}",
                f"{flow.p99_ms:.1f}",
                f"{flow.broker_us_per_message():.1f}",
                f"{flow.client_us_per_message():.0f}",
                ", ".join(f"{other.per_s:,.0f}" for other in runs[qos, label]),
                ", ".join(f"{other.broker_us_per_message():.1f}" for other in runs[qos, label]),
            ]
            for (qos, label), flow in shown.items()
        ],
    )
    print()
    print("Gateway relative to Mosquitto without authorization (msgs/s: higher is better)")
    gateway_label, baseline_label = (broker.label for broker in brokers)
    rows = []
    for qos in args.qos:
        ours, theirs = shown[qos, gateway_label], shown[qos, baseline_label]
        rows.append(
            [
                str(qos),
                ratio(ours.per_s, theirs.per_s),
                ratio(ours.p50_ms, theirs.p50_ms),
                ratio(ours.p99_ms, theirs.p99_ms),
                ratio(
                    median([flow.broker_us_per_message() for flow in runs[qos, gateway_label]]),
                    median([flow.broker_us_per_message() for flow in runs[qos, baseline_label]]),
                ),
            ]
        )
    print_table(["QoS", "msgs/s", "p50", "p99", "broker CPU/msg (median of all runs)"], rows)


def _median_flow(flows: list[Flow]) -> Flow:
    """The run with the median throughput (the lower middle one for an even count)."""
    return sorted(flows, key=lambda flow: flow.per_s)[(len(flows) - 1) // 2]


if __name__ == "__main__":
    run_main(main)
