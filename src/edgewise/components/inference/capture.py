"""Capture: which results are kept for the cloud, the capture record, and the writer that appends records to a
stream-manager stream off the message path.

A result is captured when the challenger disagrees with it (``capture.disagreement``), when its score is above
``capture.scoreAbove``, or at random with probability ``capture.sampleRate``, the first that holds naming the
record's ``reason``. Records (``edgewise.capture/1``, one JSON object per stream message) go into a bounded queue
that one thread drains into the stream, created if absent with a ``KinesisConfig`` export so that the records
reach the cloud's telemetry as a stream of the same name. A full queue drops the record (``captureDropped``); a
stream manager that cannot be reached or refuses an append is logged once per outage and each record it costs
is counted (``captureFailed``), and serving goes on: capture never holds a message up.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edgewise.components.inference.config import CaptureConfig
    from edgewise.components.inference.serving import Counters

logger = logging.getLogger(__name__)

#: The export identifier of a capture stream's ``KinesisConfig``.
EXPORT_IDENTIFIER = "edgewise-capture"
#: Records waiting to be appended, all models together; more are dropped.
QUEUE_SIZE = 1_000
#: How long after a failure the writer waits before reaching for the stream manager again (doubling to the max).
RETRY_S = 2.0
MAX_RETRY_S = 60.0


class Appender(Protocol):
    """Where capture records go: one message per record, appended to a stream."""

    def append(self, stream: str, data: bytes) -> None: ...

    def close(self) -> None: ...


def score_of(kind: str, fields: Mapping[str, object]) -> float | None:
    """The number a result is judged by: the anomaly score, a classifier's top probability (its ``score``), a
    regressor's prediction; None when the result has none."""
    value = fields.get("prediction" if kind == "regressor" else "score")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def capture_reason(
    config: CaptureConfig, *, score: float | None, disagreed: bool | None, draw: float
) -> str | None:
    """Why a result is captured (``disagreement``, ``score``, ``sample``), or None when it is not.

    ``disagreed`` is None when no challenger ran on the row; ``draw`` is a uniform random number in [0, 1).
    """
    if config.disagreement and disagreed:
        return "disagreement"
    if config.score_above is not None and score is not None and score > config.score_above:
        return "score"
    if draw < config.sample_rate:
        return "sample"
    return None


class StreamManagerAppender:
    """Appends with the ``stream-manager`` SDK's client (port and token from the component's environment),
    creating each stream, with its export to the cloud, the first time it is used and absent."""

    def __init__(self, *, port: int | None = None) -> None:
        try:
            # Imported by name: the SDK has no type information, and only capture needs it.
            self._sdk: Any = importlib.import_module("stream_manager")
        except ImportError:
            raise RuntimeError(
                "the stream-manager package is not installed (pip install stream-manager)"
            ) from None
        self._client: Any = self._sdk.StreamManagerClient(port=port, request_timeout=10)
        self._ready: set[str] = set()

    def append(self, stream: str, data: bytes) -> None:
        if stream not in self._ready:
            self._create_if_absent(stream)
        try:
            self._client.append_message(stream, data)
        except self._sdk.ResourceNotFoundException:
            # Deleted since: create it again, once.
            self._ready.discard(stream)
            self._create_if_absent(stream)
            self._client.append_message(stream, data)

    def _create_if_absent(self, stream: str) -> None:
        sdk = self._sdk
        try:
            self._client.describe_message_stream(stream)
        except sdk.ResourceNotFoundException:
            self._client.create_message_stream(
                sdk.MessageStreamDefinition(
                    name=stream,
                    # Captures are samples: when the stream is full the newest ones matter most.
                    strategy_on_full=sdk.StrategyOnFull.OverwriteOldestData,
                    persistence=sdk.Persistence.File,
                    export_definition=sdk.ExportDefinition(
                        kinesis=[sdk.KinesisConfig(identifier=EXPORT_IDENTIFIER, kinesis_stream_name=stream)]
                    ),
                )
            )
            logger.info("capture: created stream %s, exported to the cloud as %s", stream, stream)
        self._ready.add(stream)

    def close(self) -> None:
        self._client.close()


class CaptureWriter:
    """The bounded queue of capture records and the one thread that appends them."""

    def __init__(
        self, appender: Callable[[], Appender] = StreamManagerAppender, *, size: int = QUEUE_SIZE
    ) -> None:
        self._open_appender = appender
        self._queue: queue.Queue[tuple[str, bytes, Counters] | None] = queue.Queue(size)
        self._lock = threading.Lock()  # counters several threads offer records for
        self._thread: threading.Thread | None = None
        self._appender: Appender | None = None
        self._retry_at = 0.0
        self._retry_s = RETRY_S
        self._failing = False

    def offer(self, stream: str, record: Mapping[str, object], counters: Counters) -> bool:
        """Queue ``record`` for ``stream`` without waiting; False (and ``captureDropped`` counted) when full."""
        data = json.dumps(record, separators=(",", ":")).encode()
        try:
            self._queue.put_nowait((stream, data, counters))
        except queue.Full:
            with self._lock:
                counters.capture_dropped += 1
            return False
        if self._thread is None:
            self._start()
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="inference-capture", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the records already queued (waiting at most ``timeout``)."""
        thread = self._thread
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        thread.join(timeout)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            stream, data, counters = item
            if self._append(stream, data):
                counters.captured += 1
            else:
                counters.capture_failed += 1
        if self._appender is not None:
            with contextlib.suppress(Exception):
                self._appender.close()

    def _append(self, stream: str, data: bytes) -> bool:
        if self._appender is None:
            if time.monotonic() < self._retry_at:
                return False
            try:
                self._appender = self._open_appender()
            except Exception as error:
                self._failed(f"cannot reach the stream manager: {error}")
                return False
        try:
            self._appender.append(stream, data)
        except Exception as error:
            self._failed(f"cannot append to stream {stream}: {error!r}")
            with contextlib.suppress(Exception):
                self._appender.close()
            self._appender = None
            return False
        if self._failing:
            logger.info("capture: appending to the stream manager again")
        self._failing = False
        self._retry_s = RETRY_S
        return True

    def _failed(self, problem: str) -> None:
        if not self._failing:
            logger.error(
                "capture: %s; results are still served, and the records this costs are counted as captureFailed",
                problem,
            )
        self._failing = True
        self._retry_at = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, MAX_RETRY_S)
