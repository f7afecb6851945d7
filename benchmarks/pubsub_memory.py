"""Benchmark: the runtime's resident memory while a component publishes 1 million local messages that
another component consumes, beside Mosquitto's memory while a paho-mqtt client sends the same messages to
another at QoS 1 (at QoS 0 Mosquitto drops what the subscriber cannot keep up with), measured in the same
run. With the defaults it takes about five minutes on two cores; ``--count`` shortens it.

Both sides use ``pubsub_client.py`` (awsiotsdk v2 client over IPC, paho-mqtt over MQTT), flat out with
``--window`` publishes in flight. The server's RSS (``/proc/PID/status``) is sampled every ``--interval``
seconds from just before the components are deployed (or the clients started) to the last receipt;
"drift" compares the median of the last quarter of the samples with the median of the first quarter
after the first 10 % of the run, so that a leak shows as a steady climb and warm-up does not.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from _harness import (
    add_bytecode_option,
    exit_on_sigterm,
    memory_kib,
    parse_args,
    print_machine,
    print_table,
    python_env,
    run_main,
    running_runtime,
    warm_bytecode,
)
from pubsub_common import Case, IpcBench, Outcome, mosquitto, run_mqtt


@dataclass
class RssSamples:
    """RSS samples of one process, in MiB, with the seconds since sampling began."""

    pid: int
    interval: float
    times: list[float] = field(default_factory=list)
    mib: list[float] = field(default_factory=list)
    _start: float = field(default_factory=time.monotonic)
    _next: float = 0.0

    def take(self) -> None:
        now = time.monotonic()
        self.times.append(now - self._start)
        self.mib.append(memory_kib(self.pid)[0] / 1024)
        self._next = now + self.interval

    def take_when_due(self) -> None:
        if time.monotonic() >= self._next:
            self.take()

    def drift(self) -> float:
        """Median of the last quarter minus median of the first quarter after warm-up."""
        steady = self.mib[max(1, len(self.mib) // 10) :]
        quarter = max(1, len(steady) // 4)
        return statistics.median(steady[-quarter:]) - statistics.median(steady[:quarter])


def measure(
    run: Callable[[Callable[[], None]], Outcome], pid: int, interval: float
) -> tuple[Outcome, RssSamples]:
    samples = RssSamples(pid, interval)
    samples.take()
    outcome = run(samples.take_when_due)
    samples.take()
    return outcome, samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1_000_000, help="messages (1000000)")
    parser.add_argument("--size", type=int, default=100, help="message size in bytes (100)")
    parser.add_argument("--window", type=int, default=256, help="publishes in flight (256)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between RSS samples (2)")
    parser.add_argument("--shown", type=int, default=12, help="samples shown in the timeline (12)")
    add_bytecode_option(parser)
    args = parse_args(parser, argv, quick={"count": 200, "interval": 0.1, "shown": 2})
    if args.size < 16 or min(args.count, args.window, args.shown) < 1 or args.interval <= 0:
        parser.error("--size must be at least 16; --count, --window, --shown, --interval positive")
    exit_on_sigterm()

    print(f"== local pub/sub: server memory over {args.count:,} messages ==")
    print_machine()
    case = Case(args.size, args.count, 1, args.window)
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-pubsub-memory-") as tmp:
        env = python_env(Path(tmp) / "pycache" if args.bytecode == "cached" else None)
        if args.bytecode == "cached":
            warm_bytecode(env)
        with running_runtime(Path(tmp) / "root", env=env) as runtime:
            ipc = IpcBench(runtime, Path(tmp))
            ours, ours_rss = measure(
                lambda sample: ipc.run(case, while_waiting=sample), runtime.pid, args.interval
            )
        with mosquitto(Path(tmp) / "mosquitto") as broker:
            theirs, theirs_rss = measure(
                lambda sample: run_mqtt(
                    replace(case, qos=1), broker, Path(tmp) / "mqtt", while_waiting=sample
                ),
                broker.pid,
                args.interval,
            )

    rows = []
    for label, outcome, rss in (
        ("Edgewise runtime (IPC)", ours, ours_rss),
        ("Mosquitto (MQTT QoS 1)", theirs, theirs_rss),
    ):
        rows.append(
            [
                label,
                f"{outcome.received:,}/{outcome.sent:,}",
                f"{outcome.delivered_per_s:,.0f}",
                f"{rss.times[-1]:.0f}",
                f"{rss.mib[0]:.1f}",
                f"{max(rss.mib):.1f}",
                f"{rss.mib[-1]:.1f}",
                f"{rss.mib[-1] - rss.mib[0]:+.1f}",
                f"{rss.drift():+.1f}",
            ]
        )
    print()
    print_table(
        ["server", "received", "msgs/s", "seconds", "RSS before", "RSS max", "RSS after", "growth", "drift"],
        rows,
    )
    print()
    print("RSS timeline: MiB at seconds since the case began (deployment included), evenly spaced samples")
    timelines = [
        _timeline("Edgewise runtime", ours_rss, args.shown),
        _timeline("Mosquitto", theirs_rss, args.shown),
    ]
    print_table(["server", *[f"#{n + 1}" for n in range(args.shown)]], timelines)
    print()
    ours_growth = ours_rss.mib[-1] - ours_rss.mib[0]
    theirs_growth = theirs_rss.mib[-1] - theirs_rss.mib[0]
    print(
        f"Edgewise runtime: {ours_rss.mib[-1]:.1f} MiB after the run, {ours_growth:+.1f} MiB over it "
        f"(drift {ours_rss.drift():+.1f} MiB); Mosquitto: {theirs_rss.mib[-1]:.1f} MiB, {theirs_growth:+.1f} MiB. "
        f"RSS ratio after the run: {ours_rss.mib[-1] / theirs_rss.mib[-1]:.1f}x"
    )


def _timeline(name: str, rss: RssSamples, shown: int) -> list[str]:
    picks = [round(i * (len(rss.mib) - 1) / max(1, shown - 1)) for i in range(shown)]
    return [name, *[f"{rss.mib[i]:.1f} @{rss.times[i]:.0f}s" for i in picks]]


if __name__ == "__main__":
    run_main(main)
