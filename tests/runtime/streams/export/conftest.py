"""A recording telemetry channel with scripted answers, a fake clock for exports, and a real stream store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from tests.support.clock import FakeClock

from edgewise.protocol import telemetry
from edgewise.runtime.streams.export import ExportClock, ExportDeliveryError
from edgewise.runtime.streams.export.channel import Answer
from edgewise.runtime.streams.store import StreamStore

#: What a scripted answer does with a batch: answer it, or raise (ExportDeliveryError: no answer).
Script = Callable[[telemetry.ExportBatch], Answer]


def accept(batch: telemetry.ExportBatch) -> Answer:
    return telemetry.BatchAccepted(
        batch.client_token, len(batch.records), 0, batch.records[-1].sequence_number
    )


def reject(batch: telemetry.ExportBatch) -> Answer:
    return telemetry.BatchRejection(batch.client_token, telemetry.INTERNAL_ERROR, "the store is down")


def unanswered(batch: telemetry.ExportBatch) -> Answer:
    raise ExportDeliveryError("no answer")


class RecordingChannel:
    """Answers batches with ``scripts`` in turn (then accepts); keeps every batch it was sent, and the accepted."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.sent: list[telemetry.ExportBatch] = []
        self.accepted: list[telemetry.ExportBatch] = []
        self.changed = asyncio.Event()

    async def send(self, batch: telemetry.ExportBatch) -> Answer:
        self.sent.append(batch)
        self.changed.set()
        script = self.scripts.pop(0) if self.scripts else accept
        answer = script(batch)
        if isinstance(answer, telemetry.BatchAccepted):
            self.accepted.append(batch)
        return answer

    def sequence_numbers(self) -> list[int]:
        """The sequence numbers of every accepted record, in order."""
        return [record.sequence_number for batch in self.accepted for record in batch.records]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def export_clock(clock: FakeClock) -> ExportClock:
    return ExportClock(now=clock.now, sleep=clock.sleep, wall_millis=lambda: int(clock.time * 1000))


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[StreamStore]:
    store = await StreamStore.open(tmp_path / "streams", clock=lambda: int(clock.time * 1000))
    try:
        yield store
    finally:
        await store.close()
