"""Benchmark: draining a stream export backlog after an outage: the time from the cloud coming back until every
message appended while it was away is in its store, beside the rate at which they were appended.

A real ``edgewise cloud up`` (its managed Mosquitto, telemetry worker, SQLite) enrolls one device (``edgewise
device bootstrap``; reconnect delays 0.1 to 1 s) and is stopped: that is the outage. A real runtime with that
device's ``edgewise.yaml`` runs the built-in ``aws.greengrass.StreamManager`` (client authentication off, so
that this process connects with the real ``stream-manager`` SDK); a ``File`` stream has a ``KinesisConfig``
export (``--batch-size`` records per batch). For ``--outage-s`` seconds this process appends messages of about
100 bytes, one at a time, at ``--rate`` messages/s (0: as fast as the SDK acknowledges them). Then the cloud is
started again on the same data and ports, and the backlog is timed from its ``Ready`` line until every appended
message is counted in its SQLite database (read-only); the count must then be exactly the number appended.

The drain rate beside the append rate says whether a device catches up after an outage, and how long a
10-minute outage at the measured append rate takes to drain (the estimate printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stream_manager import (
    ExportDefinition,
    KinesisConfig,
    MessageStreamDefinition,
    Persistence,
    StrategyOnFull,
    StreamManagerClient,
)

from _harness import (
    BenchRuntime,
    exit_on_sigterm,
    free_port,
    parse_args,
    print_machine,
    print_table,
    run_main,
    wait_for,
)
from edgewise.protocol.device_config import ReconnectSection, parse_device_config, write_device_config
from fleet_fanout import Cloud, CloudPorts, cloud_up
from stream_append import MAX_STREAM_BYTES, connect, deploy_stream_manager
from telemetry_common import StoredMessages

THING = "backlog-device"
STREAM = "backlog"
#: The outage the issue names; the estimate for it is printed from the measured rates.
ISSUE_OUTAGE_S = 600.0
DRAIN_TIMEOUT_S = 1800.0


def bootstrap_device(cloud: Cloud, directory: Path) -> Path:
    """``edgewise device bootstrap`` for the benchmark's thing; its ``edgewise.yaml`` with short reconnect delays,
    so that the device's back-off after a long outage adds at most a second to the drain."""
    env = {**os.environ, "EDGEWISE_API_TOKEN": cloud.token, "COLUMNS": "200"}
    command = [sys.executable, "-m", "edgewise.cli", "device", "bootstrap", "--thing", THING]
    command += ["--out", str(directory), "--data", str(cloud.data_dir), "--api", cloud.api_url]
    subprocess.run(command, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    path = directory / "edgewise.yaml"
    config = parse_device_config(path.read_text(), base_dir=directory)
    assert config.cloud is not None
    cloud_section = dataclasses.replace(
        config.cloud, reconnect=ReconnectSection(min_delay=0.1, max_delay=1.0)
    )
    path.write_text(write_device_config(dataclasses.replace(config, cloud=cloud_section)))
    acl = cloud.data_dir / "broker" / "devices.acl"
    wait_for(lambda: acl.exists() and f"user {THING}" in acl.read_text(), timeout=60, what="the device's ACL")
    return path


def create_stream(client: StreamManagerClient, batch_size: int) -> None:
    client.create_message_stream(
        MessageStreamDefinition(
            name=STREAM,
            max_size=MAX_STREAM_BYTES,
            strategy_on_full=StrategyOnFull.RejectNewData,
            persistence=Persistence.File,
            export_definition=ExportDefinition(
                kinesis=[
                    KinesisConfig(identifier="to-cloud", kinesis_stream_name=STREAM, batch_size=batch_size)
                ]
            ),
        )
    )


def append_for(client: StreamManagerClient, seconds: float, rate: float) -> tuple[int, float]:
    """Append for ``seconds`` at ``rate`` messages/s (0: back to back); messages appended and seconds taken."""
    started = time.perf_counter()
    appended = 0
    while (now := time.perf_counter()) - started < seconds:
        if rate and appended > (now - started) * rate:
            time.sleep(min(appended / rate - (now - started), 0.01))
            continue
        body = {"seq": appended, "temperature": 20.0 + appended % 10, "unit": "C", "site": "benchmark"}
        client.append_message(STREAM, json.dumps(body).encode())
        appended += 1
    return appended, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--outage-s", type=float, default=60.0, help="seconds of appending with no cloud (60)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="messages/s appended during the outage (0: as fast as possible)",
    )
    parser.add_argument("--batch-size", type=int, default=500, help="KinesisConfig batch_size (500)")
    args = parse_args(parser, argv, quick={"outage_s": 1.0, "rate": 200.0})
    if not 0 < args.outage_s <= 3600 or args.rate < 0 or not 1 <= args.batch_size <= 500:
        parser.error("--outage-s must be 0 to 3600, --rate at least 0, --batch-size 1 to 500")
    exit_on_sigterm()
    logging.getLogger().setLevel(logging.WARNING)

    pace = f"{args.rate:g} messages/s" if args.rate else "as fast as possible"
    print(f"== export backlog: {args.outage_s:g} s outage appending {pace}, batches of {args.batch_size} ==")
    print_machine()
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-backlog-") as tmp:
        directory = Path(tmp)
        ports = CloudPorts.free()
        with cloud_up(directory / "data", ports) as cloud:
            config = bootstrap_device(cloud, directory / "device")
        runtime = BenchRuntime(directory / "root", "--config", str(config))
        client: StreamManagerClient | None = None
        try:
            runtime.start()
            port = free_port()
            deploy_stream_manager(runtime, directory / "recipes", port)
            client = wait_for(lambda: connect(port), timeout=60, what="stream manager to accept the SDK")
            create_stream(client, args.batch_size)
            appended, append_seconds = append_for(client, args.outage_s, args.rate)
            launched = time.perf_counter()
            with cloud_up(directory / "data", ports):
                ready = time.perf_counter()
                store = StoredMessages(directory / "data" / "edgewise.db")
                try:
                    wait_for(
                        lambda: store.after(0) >= appended,
                        timeout=DRAIN_TIMEOUT_S,
                        what=f"{appended} exported messages in the store",
                        interval=0.01,
                    )
                    drained = time.perf_counter()
                    stored = store.after(0)
                finally:
                    store.close()
        finally:
            if client is not None:
                client.close()
            runtime.stop()
    if stored != appended:
        raise RuntimeError(f"{appended} messages appended, {stored} stored")

    append_rate = appended / append_seconds
    drain_seconds = drained - ready
    drain_rate = appended / drain_seconds
    print()
    print_table(
        ["messages", "appended in", "append rate", "cloud start", "drain (from Ready)", "drain rate"],
        [
            [
                f"{appended:,}",
                f"{append_seconds:.1f} s",
                f"{append_rate:,.0f} /s",
                f"{ready - launched:.1f} s",
                f"{drain_seconds:.1f} s",
                f"{drain_rate:,.0f} /s",
            ]
        ],
    )
    print()
    print(f"drain rate / append rate: {drain_rate / append_rate:.2f}x")
    backlog = append_rate * ISSUE_OUTAGE_S
    print(
        f"a {ISSUE_OUTAGE_S / 60:g}-minute outage at {append_rate:,.0f} messages/s: {backlog:,.0f} messages, "
        f"drained in about {backlog / drain_rate:,.0f} s once the cloud is up"
    )


if __name__ == "__main__":
    run_main(main)
