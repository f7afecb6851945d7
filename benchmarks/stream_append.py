"""Benchmark: stream manager appends per second, with and without ``flush_on_write``, beside a raw file append
with the same fsync policy and the SDK client's own floor, in the same run.

Four ways of appending the same ``--count`` messages of ``--size`` bytes, one at a time, each waiting for the
previous one to be acknowledged:

* stream manager: the real ``stream-manager`` SDK's ``StreamManagerClient.append_message`` against the
  runtime's built-in ``aws.greengrass.StreamManager`` (a real runtime started on a temporary root, stream
  manager deployed with a local deployment, client authentication off so that this process can connect),
  into a ``File`` stream;
* SDK floor: the same SDK client and calls against a ``StreamServer`` started in this process (its own event
  loop thread) over a null store whose ``append`` returns the next sequence number at once: what the client,
  the protocol and the loopback round trip cost with no storage behind them, the fastest any server the SDK
  talks to can be appended to one message at a time;
* store: ``StreamStore.append`` in this process (the storage the server calls, without the protocol), to
  separate protocol cost from storage cost;
* raw file: length-prefixed records (4-byte big-endian length, then the payload) appended to one file with
  ``os.write``, and with ``flush_on_write`` an ``os.fdatasync`` after each record, the call the stream's
  segments make (on a growing file it writes the new size too, as ``fsync`` would).

Each is run ``--repeat`` times per fsync policy, in rotating order, each time into a new stream or file; the
medians are shown, and each relative to the raw file with the same policy. The stream manager is also shown
relative to the SDK floor, and as the microseconds per append that the runtime's server and store add to it
(``1/stream manager - 1/floor``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stream_manager import MessageStreamDefinition, Persistence, StrategyOnFull, StreamManagerClient

from _harness import (
    BenchRuntime,
    exit_on_sigterm,
    free_port,
    median,
    parse_args,
    print_machine,
    print_table,
    run_main,
    wait_for,
)
from edgewise.runtime.streams.definition import StorageStatus, StoredMessage, StreamDefinition, StreamInfo
from edgewise.runtime.streams.errors import StreamNotFoundError
from edgewise.runtime.streams.server import StreamServer
from edgewise.runtime.streams.store import StreamStore

STREAM_MANAGER = "aws.greengrass.StreamManager"
#: Large enough that no run's messages are overwritten or refused for space.
MAX_STREAM_BYTES = 2**40

Append = Callable[[bool, int, bytes, str], float]

RAW = "raw file"
STORE = "store"
STREAM_MANAGER_WAY = "stream manager (SDK)"
FLOOR = "SDK floor (null store)"


class NullStore:
    """A ``StreamBackend`` that keeps only definitions and counters: ``append`` returns the next number at once."""

    def __init__(self) -> None:
        self._definitions: dict[str, StreamDefinition] = {}
        self._next: dict[str, int] = {}

    async def create(self, definition: StreamDefinition) -> None:
        self._definitions[definition.name] = definition
        self._next[definition.name] = 0

    async def update(self, definition: StreamDefinition) -> None:
        self._known(definition.name)
        self._definitions[definition.name] = definition

    async def delete(self, name: str) -> None:
        self._known(name)
        del self._definitions[name], self._next[name]

    def describe(self, name: str) -> StreamInfo:
        self._known(name)
        return StreamInfo(self._definitions[name], StorageStatus(0, self._next[name] - 1, 0))

    def names(self) -> list[str]:
        return list(self._definitions)

    async def append(self, name: str, payload: bytes) -> int:
        self._known(name)
        number = self._next[name]
        self._next[name] = number + 1
        return number

    async def read(
        self,
        name: str,
        *,
        desired_start_sequence_number: int = 0,
        min_message_count: int = 1,
        max_message_count: int | None = None,
        read_timeout_millis: int = 0,
    ) -> list[StoredMessage]:
        self._known(name)
        return []

    def _known(self, name: str) -> None:
        if name not in self._definitions:
            raise StreamNotFoundError(name)


@contextmanager
def null_stream_server() -> Iterator[int]:
    """A ``StreamServer`` over a :class:`NullStore` on a free loopback port, in its own event loop thread.

    The SDK client blocks this thread on each call, so the server needs a loop of its own; the port is yielded.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="null-stream-server", daemon=True)
    thread.start()
    server = StreamServer(NullStore(), authenticate=lambda token: "benchmark", port=0)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=60)
        yield server.port
    finally:
        try:
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=60)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()


def raw_append(directory: Path) -> Append:
    """Seconds to append ``count`` length-prefixed records to a new file, each synced with ``flush``."""

    def run(flush: bool, count: int, payload: bytes, name: str) -> float:
        record = struct.pack(">I", len(payload)) + payload
        descriptor = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            started = time.perf_counter()
            for _ in range(count):
                os.write(descriptor, record)
                if flush:
                    os.fdatasync(descriptor)
            return time.perf_counter() - started
        finally:
            os.close(descriptor)

    return run


def store_append(directory: Path) -> Append:
    """Seconds for ``StreamStore.append`` of ``count`` messages to a new ``File`` stream in this process."""

    async def appends(flush: bool, count: int, payload: bytes, name: str) -> float:
        store = await StreamStore.open(directory / name)
        try:
            await store.create(StreamDefinition(name=name, max_size=MAX_STREAM_BYTES, flush_on_write=flush))
            started = time.perf_counter()
            for _ in range(count):
                await store.append(name, payload)
            return time.perf_counter() - started
        finally:
            await store.close()

    return lambda flush, count, payload, name: asyncio.run(appends(flush, count, payload, name))


def sdk_append(client: StreamManagerClient) -> Append:
    """Seconds for ``append_message`` of ``count`` messages to a new ``File`` stream through the SDK."""

    def run(flush: bool, count: int, payload: bytes, name: str) -> float:
        client.create_message_stream(
            MessageStreamDefinition(
                name=name,
                max_size=MAX_STREAM_BYTES,
                strategy_on_full=StrategyOnFull.RejectNewData,
                persistence=Persistence.File,
                flush_on_write=flush,
            )
        )
        started = time.perf_counter()
        for _ in range(count):
            client.append_message(name, payload)
        elapsed = time.perf_counter() - started
        client.delete_message_stream(name)
        return elapsed

    return run


def connect(port: int) -> StreamManagerClient | None:
    try:
        return StreamManagerClient(port=port, request_timeout=60)
    except Exception:  # the SDK raises its own errors and OSError alike until the server listens
        return None


def deploy_stream_manager(runtime: BenchRuntime, recipes: Path, port: int) -> None:
    recipes.mkdir(parents=True, exist_ok=True)
    configuration = {"STREAM_MANAGER_SERVER_PORT": str(port), "STREAM_MANAGER_AUTHENTICATE_CLIENT": "false"}
    deployment = runtime.call(
        "CreateLocalDeployment",
        {
            "recipeDirectoryPath": str(recipes),
            "rootComponentVersionsToAdd": {STREAM_MANAGER: "2.1.0"},
            "componentToConfiguration": {STREAM_MANAGER: {"MERGE": configuration}},
        },
    )["deploymentId"]
    status = runtime.wait_deployment(str(deployment))
    if status != "SUCCEEDED":
        raise RuntimeError(f"deploying {STREAM_MANAGER} ended {status}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20000, help="messages per run without flush (20000)")
    parser.add_argument(
        "--flush-count", type=int, default=2000, help="messages per run with flush_on_write (2000)"
    )
    parser.add_argument("--size", type=int, default=200, help="payload bytes (200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way per fsync policy (3)")
    args = parse_args(parser, argv, quick={"count": 200, "flush_count": 20, "repeat": 1})
    if min(args.count, args.flush_count, args.repeat) < 1 or not 1 <= args.size <= 1024 * 1024:
        parser.error("--count, --flush-count and --repeat must be positive, --size 1 to 1048576")
    exit_on_sigterm()
    # The SDK logs every connection at INFO; the numbers are what this prints.
    logging.getLogger().setLevel(logging.WARNING)
    payload = os.urandom(args.size)

    print(f"== stream append: {args.count} / {args.flush_count} messages of {args.size} B, one at a time ==")
    print_machine()
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    seconds: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-streams-") as tmp:
        directory = Path(tmp)
        (directory / "raw").mkdir()
        runtime = BenchRuntime(directory / "root")
        client: StreamManagerClient | None = None
        floor_client: StreamManagerClient | None = None
        try:
            with null_stream_server() as floor_port:
                runtime.start()
                port = free_port()
                deploy_stream_manager(runtime, directory / "recipes", port)
                client = wait_for(lambda: connect(port), timeout=60, what="stream manager to accept the SDK")
                floor_client = wait_for(
                    lambda: connect(floor_port), timeout=60, what="the null stream server to accept the SDK"
                )
                ways: list[tuple[str, Append]] = [
                    (RAW, raw_append(directory / "raw")),
                    (STORE, store_append(directory / "store")),
                    (STREAM_MANAGER_WAY, sdk_append(client)),
                    (FLOOR, sdk_append(floor_client)),
                ]
                for flush in (False, True):
                    count = args.flush_count if flush else args.count
                    for turn in range(args.repeat):
                        first = turn % len(ways)
                        for label, append in ways[first:] + ways[:first]:
                            name = f"bench-{'flush' if flush else 'buffered'}-{label.split()[0]}-{turn}"
                            seconds.setdefault((label, flush), []).append(append(flush, count, payload, name))
                # The clients' loop threads talk to the server's loop; they end before it does.
                floor_client.close()
                floor_client = None
        finally:
            for open_client in (client, floor_client):
                if open_client is not None:
                    open_client.close()
            runtime.stop()

    def rate(label: str, flush: bool) -> float:
        return float(args.flush_count if flush else args.count) / median(seconds[(label, flush)])

    print()
    print_table(
        ["way", "flush_on_write", "median messages/s", "all runs: messages/s", "relative to raw file"],
        [
            [
                label,
                str(flush).lower(),
                f"{rate(label, flush):,.0f}",
                ", ".join(f"{(args.flush_count if flush else args.count) / s:,.0f}" for s in runs),
                f"{rate(label, flush) / rate(RAW, flush):.2f}",
            ]
            for (label, flush), runs in seconds.items()
        ],
    )
    print()
    for flush in (False, True):
        sdk, store, floor = (
            rate(label, flush) / rate(RAW, flush) for label in (STREAM_MANAGER_WAY, STORE, FLOOR)
        )
        print(
            f"stream manager SDK / raw file append, flush_on_write={str(flush).lower()}: {sdk:.2f}x "
            f"(1/{1 / sdk:,.1f}; store alone: {store:.2f}x; SDK floor: {floor:.2f}x)"
        )
    for flush in (False, True):
        edgewise, floor = rate(STREAM_MANAGER_WAY, flush), rate(FLOOR, flush)
        print(
            f"stream manager SDK / SDK floor (null store), flush_on_write={str(flush).lower()}: "
            f"{edgewise / floor:.2f}x; the runtime's server and store add "
            f"{(1 / edgewise - 1 / floor) * 1e6:,.0f} us per append "
            f"({1e6 / edgewise:,.0f} us vs {1e6 / floor:,.0f} us)"
        )


if __name__ == "__main__":
    run_main(main)
