"""``python -m edgewise.components.reading_exporter``: subscribes to the sensor hub's local readings (IPC
SubscribeToTopic) and appends each to a stream-manager stream (the ``stream-manager`` SDK) created with a
``KinesisConfig`` export, so that the runtime's stream manager delivers the readings to the Edgewise cloud, which
stores them as telemetry of the export's stream name (docs/runtime.md, "Exports").

A component of its own rather than an option of the sensor hub, because that is how Greengrass users build it and
how AWS's stream manager samples are laid out: the producer publishes on local pub/sub and knows nothing of the
cloud, and one component owns the stream, its size, its export and what happens while the device is offline. The
stream is on disk and its export resumes after its checkpoint, so readings made while the cloud cannot be reached
arrive later, each stored once; another producer on the topic is exported the same way without a change to it.

A reading must be a JSON object (a JSON message, or a binary one holding JSON); it is appended as compact JSON.
Anything else is skipped and counted, with a warning the first time. Readings are appended one at a time on the
IPC client's single executor thread, in the order they arrive. When the stream manager cannot be reached or
refuses an append, that is logged once per outage, the readings it costs are counted, and the stream manager is
reached for again after a back-off (1 s, doubling to 30 s): local pub/sub keeps nothing, so those readings are
lost, as they are on Greengrass.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Protocol

from edgewise.components.process import configure_logging, connect_ipc, stop_on_signals
from edgewise.protocol.telemetry import is_stream_name
from edgewise.topics import TopicError, validate_filter

logger = logging.getLogger("edgewise.components.reading_exporter")

#: The identifier of the stream's ``KinesisConfig`` export.
EXPORT_IDENTIFIER: Final = "edgewise-readings"
RETRY_S: Final = 1.0
MAX_RETRY_S: Final = 30.0
#: The stream manager SDK's rule for a stream's name.
_LOCAL_STREAM_NAME: Final = re.compile(r"[A-Za-z0-9_ ,.\-]{1,255}")
#: A full stream drops its oldest segment, so a stream holds at least four, each at least the SDK's 1 KiB and at
#: most its default 16 MiB: a full stream loses a quarter of its readings at most, never all of them.
_SEGMENTS: Final = 4
_MIN_SEGMENT_SIZE: Final = 1024
_MAX_SEGMENT_SIZE: Final = 16 * 1024 * 1024
_MIN_STREAM_SIZE: Final = _SEGMENTS * _MIN_SEGMENT_SIZE


@dataclass(frozen=True)
class ExportSettings:
    """Which readings go to which stream, and where its export sends them."""

    topic: str = "sensors/+/reading"
    #: The stream on the device.
    stream: str = "SensorReadings"
    #: The cloud telemetry stream the export stores the readings in.
    cloud_stream: str = "sensor-readings"
    #: Bytes the stream keeps on the device; when full, the oldest readings make room for new ones.
    max_size_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        try:
            validate_filter(self.topic)
        except TopicError as exc:
            raise ValueError(f"topic: {exc}") from None
        if _LOCAL_STREAM_NAME.fullmatch(self.stream) is None:
            raise ValueError(
                f"stream: {self.stream!r} is not a stream name (1-255 letters, digits, spaces and _ , . -)"
            )
        if not is_stream_name(self.cloud_stream):
            raise ValueError(
                f"cloud_stream: {self.cloud_stream!r} is not a cloud telemetry stream name "
                "(1-256 letters, digits and _ . : / # -, not starting with /)"
            )
        if self.max_size_bytes < _MIN_STREAM_SIZE:
            raise ValueError(f"max_size_bytes: {self.max_size_bytes} is below {_MIN_STREAM_SIZE}")


def reading_record(message: object) -> bytes:
    """What is appended for one local message: the reading, a JSON object, as compact JSON.

    Raises:
        ValueError: the message is not a reading; the text says why.
    """
    if isinstance(message, bytes | bytearray):
        try:
            message = json.loads(message)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ValueError(f"a reading is a JSON object, not {type(message).__name__}")
    try:
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        # NaN and infinities, which JSON has no words for.
        raise ValueError(f"not JSON: {exc}") from None


def stream_definition(sdk: Any, settings: ExportSettings) -> Any:
    """The SDK's ``MessageStreamDefinition`` of the readings' stream: on disk, the oldest segment of readings
    dropped when it is full, exported to the cloud's telemetry stream ``settings.cloud_stream`` as soon as readings are there."""
    return sdk.MessageStreamDefinition(
        name=settings.stream,
        max_size=settings.max_size_bytes,
        stream_segment_size=min(settings.max_size_bytes // _SEGMENTS, _MAX_SEGMENT_SIZE),
        strategy_on_full=sdk.StrategyOnFull.OverwriteOldestData,
        persistence=sdk.Persistence.File,
        export_definition=sdk.ExportDefinition(
            kinesis=[
                sdk.KinesisConfig(identifier=EXPORT_IDENTIFIER, kinesis_stream_name=settings.cloud_stream)
            ]
        ),
    )


class Appender(Protocol):
    """Where readings go: one stream message each."""

    def append(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class StreamAppender:
    """Appends with the SDK's client (port and token from the environment the runtime gives a component while
    stream manager is deployed), after creating the stream with its export, or updating the definition of the
    stream an earlier run created."""

    def __init__(self, settings: ExportSettings) -> None:
        try:
            # Imported by name: the SDK has no type information.
            sdk: Any = importlib.import_module("stream_manager")
        except ImportError:
            raise RuntimeError(
                "the stream-manager package is not installed (pip install stream-manager)"
            ) from None
        self._stream = settings.stream
        self._client: Any = sdk.StreamManagerClient(request_timeout=10)
        definition = stream_definition(sdk, settings)
        try:
            self._client.describe_message_stream(settings.stream)
        except sdk.ResourceNotFoundException:
            self._client.create_message_stream(definition)
        except BaseException:
            self._client.close()
            raise
        else:
            try:
                self._client.update_message_stream(definition)
            except sdk.StreamManagerException as error:
                logger.warning(
                    "stream %s keeps its definition, which cannot be updated: %s", self._stream, error
                )
        logger.info(
            "appending readings to stream %s, exported to the cloud's telemetry stream %s",
            settings.stream,
            settings.cloud_stream,
        )

    def append(self, data: bytes) -> None:
        self._client.append_message(self._stream, data)

    def close(self) -> None:
        self._client.close()


class ReadingExporter:
    """Appends each reading it is handed, counting what it appended, skipped and lost."""

    def __init__(
        self, open_appender: Callable[[], Appender], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._open_appender = open_appender
        self._clock = clock
        self._appender: Appender | None = None
        self._lock = threading.Lock()  # the executor thread appends; the main thread closes
        self._retry_at = 0.0
        self._retry_s = RETRY_S
        self._failing = False
        self.appended = 0
        #: Messages that were not readings.
        self.skipped = 0
        #: Readings lost because the stream manager could not be reached or refused them.
        self.lost = 0

    def open(self) -> None:
        """Reach the stream manager now (creating the stream) rather than at the first reading."""
        with self._lock:
            self._reach()

    def handle(self, message: object) -> None:
        """Append one local message's reading."""
        try:
            record = reading_record(message)
        except ValueError as error:
            with self._lock:
                self.skipped += 1
                first = self.skipped == 1
            if first:
                logger.warning("skipped a message that is not a reading (%s); later ones are counted", error)
            return
        with self._lock:
            if self._append(record):
                self.appended += 1
            else:
                self.lost += 1

    def close(self) -> None:
        with self._lock:
            if self._appender is not None:
                self._close_appender()
        logger.info(
            "reading exporter stopped: %d readings appended, %d messages skipped, %d readings lost",
            self.appended,
            self.skipped,
            self.lost,
        )

    def _reach(self) -> bool:
        if self._appender is not None:
            return True
        if self._clock() < self._retry_at:
            return False
        try:
            self._appender = self._open_appender()
        except Exception as error:
            self._failed(f"cannot reach the stream manager: {error}")
            return False
        return True

    def _append(self, record: bytes) -> bool:
        if not self._reach():
            return False
        assert self._appender is not None
        try:
            self._appender.append(record)
        except Exception as error:
            self._failed(f"cannot append to the stream: {error!r}")
            self._close_appender()
            return False
        if self._failing:
            logger.info("appending readings again")
        self._failing = False
        self._retry_s = RETRY_S
        return True

    def _close_appender(self) -> None:
        assert self._appender is not None
        try:
            self._appender.close()
        except Exception as error:
            logger.debug("closing the stream manager client: %s", error)
        self._appender = None

    def _failed(self, problem: str) -> None:
        if not self._failing:
            logger.error("%s; trying again, and counting the readings this costs", problem)
        self._failing = True
        self._retry_at = self._clock() + self._retry_s
        self._retry_s = min(self._retry_s * 2, MAX_RETRY_S)


def message_of(event: Any) -> object:
    """The message of a SubscribeToTopic event: a JSON message's value, a binary message's bytes, else None."""
    if event.json_message is not None:
        return event.json_message.message
    if event.binary_message is not None:
        return bytes(event.binary_message.message)
    return None


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = ExportSettings()
    parser = argparse.ArgumentParser(prog="python -m edgewise.components.reading_exporter")
    parser.add_argument("--topic", default=defaults.topic, help="local topic filter of the readings")
    parser.add_argument("--stream", default=defaults.stream, help="the stream on the device")
    parser.add_argument(
        "--cloud-stream", default=defaults.cloud_stream, help="the cloud telemetry stream of the export"
    )
    parser.add_argument(
        "--max-size", type=int, default=defaults.max_size_bytes, help="bytes the stream keeps on the device"
    )
    args = parser.parse_args(argv)
    try:
        args.settings = ExportSettings(
            topic=args.topic, stream=args.stream, cloud_stream=args.cloud_stream, max_size_bytes=args.max_size
        )
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    settings: ExportSettings = args.settings
    configure_logging()
    stop = threading.Event()
    stop_on_signals(stop.set, thread_name="reading-exporter-stop")
    # One executor thread: readings are appended one at a time, in the order they arrive.
    client = connect_ipc(ThreadPoolExecutor(max_workers=1))
    if client is None:
        return 1
    exporter = ReadingExporter(lambda: StreamAppender(settings))

    def on_stream_error(error: Exception) -> bool:
        logger.error("subscription to %s: %s", settings.topic, error)
        return False  # keep the subscription

    try:
        exporter.open()
        try:
            client.subscribe_to_topic(
                topic=settings.topic,
                on_stream_event=lambda event: exporter.handle(message_of(event)),
                on_stream_error=on_stream_error,
            )
        except Exception as error:
            logger.error("cannot subscribe to %s: %s", settings.topic, error)
            return 1
        logger.info("exporting the readings on %s", settings.topic)
        stop.wait()
    finally:
        client.close(executor_wait=False)
        exporter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
