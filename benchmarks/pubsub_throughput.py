"""Benchmark: local pub/sub between two components over Greengrass IPC, beside the same publisher and
subscriber through a local Mosquitto with paho-mqtt at QoS 0 and QoS 1, measured in the same run.

Over IPC both sides are Edgewise components using the unmodified awsiotsdk v2 client: the publisher keeps
``--window`` ``publish_to_topic_async`` futures in flight, the subscriber counts what arrives and measures
each message's latency from the send time stamped in its payload. The MQTT side runs the same code with
paho-mqtt (``pubsub_client.py``); at QoS 1 the publisher keeps the same window of unacknowledged
publishes, at QoS 0 there is nothing to wait for.

With ``--publishers K [K...]`` each case runs with K publisher processes (K components over IPC, K paho
clients for Mosquitto) that share its messages and its pace, into one subscriber: enough publishers that the
clients are not the ceiling.

Two cases per message size: "flat out" publishes as fast as the window allows (messages/s; the latency
then is mostly time spent queued; the run with the median throughput of ``--repeat`` is shown), "paced"
publishes ``--paced-rate`` messages/s (latency when nothing is saturated). "server CPU" is the CPU time
the runtime or Mosquitto used per delivered message. Every process runs on this machine, so the clients
compete with the runtime or the broker for the same cores.
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
from pubsub_common import TRANSPORT_CHOICES, Case, compare, print_comparison, size_text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10240], help="bytes (100 10240)")
    parser.add_argument("--count-small", type=int, default=20000, help="messages of <= 1 KiB, flat out")
    parser.add_argument("--count-large", type=int, default=5000, help="messages of > 1 KiB, flat out")
    parser.add_argument("--paced-rate", type=float, default=1000.0, help="messages/s when paced (1000)")
    parser.add_argument("--paced-count", type=int, default=3000, help="messages when paced (3000)")
    parser.add_argument("--subscribers", type=int, default=1, help="subscribers of the topic (1)")
    parser.add_argument(
        "--publishers", type=int, nargs="+", default=[1], help="publisher processes, one case per value (1)"
    )
    parser.add_argument(
        "--transports",
        nargs="+",
        choices=TRANSPORT_CHOICES,
        default=list(TRANSPORT_CHOICES),
        help="what to run: ipc, qos0, qos1 (all three)",
    )
    parser.add_argument("--no-paced", action="store_true", help="flat-out cases only")
    parser.add_argument("--window", type=int, default=256, help="publishes in flight (256)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each flat-out case; median shown (3)")
    add_bytecode_option(parser)
    args = parse_args(parser, argv, quick={"sizes": [100], "count_small": 50, "paced_count": 20, "repeat": 1})
    if (
        min(args.sizes) < 16
        or min(args.subscribers, args.window, args.repeat, *args.publishers) < 1
        or args.paced_rate <= 0
    ):
        parser.error(
            "sizes must be at least 16 bytes; --subscribers, --publishers, --window, --repeat, --paced-rate "
            "positive"
        )
    exit_on_sigterm()

    print("== local pub/sub: throughput and latency, publishers to one subscriber ==")
    print_machine()
    planned: list[tuple[str, Case]] = []
    for size in args.sizes:
        count = args.count_small if size <= 1024 else args.count_large
        for publishers in args.publishers:
            suffix = f", {publishers} pubs" if args.publishers != [1] else ""
            flat = Case(size, count, args.subscribers, args.window, publishers=publishers)
            planned.append((f"{size_text(size)} flat out{suffix}", flat))
            if not args.no_paced:
                paced = Case(
                    size,
                    args.paced_count,
                    args.subscribers,
                    args.window,
                    rate=args.paced_rate,
                    publishers=publishers,
                )
                planned.append((f"{size_text(size)} paced {args.paced_rate:g}/s{suffix}", paced))
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-pubsub-") as tmp:
        env = python_env(Path(tmp) / "pycache" if args.bytecode == "cached" else None)
        if args.bytecode == "cached":
            warm_bytecode(env)
        results = compare(
            planned,
            directory=Path(tmp),
            env=env,
            repeat=lambda label: args.repeat if "flat out" in label else 1,
            transports=tuple(args.transports),
        )
    print()
    print_comparison(planned, results)


if __name__ == "__main__":
    run_main(main)
