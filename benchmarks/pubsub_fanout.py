"""Benchmark: one publisher and 20 subscriber components on one local topic over Greengrass IPC, beside
the same fan-out through a local Mosquitto with 20 paho-mqtt subscribers (QoS 0 and QoS 1), measured in
the same run.

Each subscriber is its own process (a component using the unmodified awsiotsdk v2 client, or a paho
client); "msgs/s" counts deliveries, all subscribers together, from the first publish to the last
receipt. "flat out" publishes as fast as ``--window`` allows; "paced" publishes ``--paced-rate`` messages
per second, so the latency is not dominated by queueing. "server CPU" is the CPU time the runtime or
Mosquitto used per delivery. All processes share this machine's cores.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _harness import (
    add_bytecode_option,
    exit_on_sigterm,
    parse_args,
    print_machine,
    python_env,
    run_main,
    warm_bytecode,
)
from pubsub_common import Case, compare, print_comparison, size_text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=20, help="subscriber processes (20)")
    parser.add_argument("--size", type=int, default=100, help="message size in bytes (100)")
    parser.add_argument("--count", type=int, default=5000, help="messages published flat out (5000)")
    parser.add_argument("--paced-rate", type=float, default=200.0, help="messages/s when paced (200)")
    parser.add_argument("--paced-count", type=int, default=1000, help="messages published paced (1000)")
    parser.add_argument("--window", type=int, default=256, help="publishes in flight (256)")
    add_bytecode_option(parser)
    args = parse_args(
        parser, argv, quick={"subscribers": 2, "count": 50, "paced_rate": 1000.0, "paced_count": 20}
    )
    if args.size < 16 or min(args.subscribers, args.count, args.paced_count, args.window) < 1:
        parser.error("--size must be at least 16; --subscribers, --count, --paced-count, --window positive")
    exit_on_sigterm()

    print(f"== local pub/sub: fan-out to {args.subscribers} subscribers ==")
    print_machine()
    size = size_text(args.size)
    planned = [
        (f"{size} flat out", Case(args.size, args.count, args.subscribers, args.window)),
        (
            f"{size} paced {args.paced_rate:g}/s",
            Case(args.size, args.paced_count, args.subscribers, args.window, rate=args.paced_rate),
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-fanout-") as tmp:
        env = python_env(Path(tmp) / "pycache" if args.bytecode == "cached" else None)
        if args.bytecode == "cached":
            warm_bytecode(env)
        results = compare(planned, directory=Path(tmp), env=env, repeat=lambda label: 1)
    print()
    print_comparison(planned, results)


if __name__ == "__main__":
    run_main(main)
