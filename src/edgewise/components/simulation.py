"""Simulated hub sensors — temperature, humidity, vibration — with labelled injected faults and optional drift.

The data the ML pipeline is tested and demonstrated on: every reading says whether a fault was injected into
it (``anomaly`` 1 or 0, and which fault), so a dataset built from the readings has labels and a model's
findings can be scored. Deterministic for a seed. Standard library only, so a component on a device can run it.

Faults last a few readings each and start at random with probability ``fault_rate`` per normal reading:

- ``spike``: one field jumps far off its normal range;
- ``stuck``: every field repeats its last value exactly (a sensor that froze);
- ``vibration``: the vibration level rises several times over (a failing bearing).

Drift is not a fault and is not labelled: from ``drift_after`` readings on, temperature rises by
``drift_per_reading`` each reading and humidity falls by half that (a room that slowly heats up), which is
what a drift detector must notice and an anomaly model trained before it must not be trusted on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

FAULTS = ("spike", "stuck", "vibration")
_FAULT_LENGTH = (3, 8)


@dataclass(frozen=True)
class SimulationSettings:
    """How a simulated hub behaves."""

    seed: int = 0
    interval_s: float = 1.0
    fault_rate: float = 0.01
    drift_after: int | None = None
    drift_per_reading: float = 0.01
    #: Simulated seconds per reading, for the daily cycle (``None``: ``interval_s``): a fast demo publishes
    #: every 0.1 s yet lets its readings cover whole cycles.
    simulated_interval_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate: {self.fault_rate} is not between 0 and 1")
        if self.interval_s <= 0:
            raise ValueError(f"interval_s: {self.interval_s} is not positive")
        if self.simulated_interval_s is not None and self.simulated_interval_s <= 0:
            raise ValueError(f"simulated_interval_s: {self.simulated_interval_s} is not positive")
        if self.drift_after is not None and self.drift_after < 0:
            raise ValueError(f"drift_after: {self.drift_after} is negative")


@dataclass(frozen=True)
class Reading:
    """One sample of every sensor, and what was injected into it."""

    sequence: int
    timestamp: float
    temperature: float
    humidity: float
    vibration: float
    fault: str | None

    @property
    def anomaly(self) -> int:
        """1 when a fault was injected into this reading, else 0."""
        return 0 if self.fault is None else 1

    def payload(self, thing: str) -> dict[str, object]:
        """The reading as a device publishes it."""
        return {
            "thing": thing,
            "sequence": self.sequence,
            "timestamp": round(self.timestamp, 3),
            "temperature": round(self.temperature, 3),
            "humidity": round(self.humidity, 3),
            "vibration": round(self.vibration, 4),
            "anomaly": self.anomaly,
            "fault": self.fault,
        }


def readings(settings: SimulationSettings, *, start: float = 0.0) -> Iterator[Reading]:
    """An endless series of readings, one per ``settings.interval_s`` from ``start`` (seconds since the epoch)."""
    rng = random.Random(settings.seed)
    step = settings.interval_s if settings.simulated_interval_s is None else settings.simulated_interval_s
    phase = rng.uniform(0.0, 2.0 * math.pi)
    fault = FAULTS[0]
    fault_left = 0
    last: Reading | None = None
    sequence = 0
    while True:
        timestamp = start + sequence * settings.interval_s
        cycle = math.sin(phase + sequence * step * 2.0 * math.pi / 600.0)
        drift = 0.0
        if settings.drift_after is not None and sequence >= settings.drift_after:
            drift = (sequence - settings.drift_after + 1) * settings.drift_per_reading
        temperature = 21.0 + 2.0 * cycle + rng.gauss(0.0, 0.15) + drift
        humidity = 45.0 - 4.0 * cycle + rng.gauss(0.0, 0.5) - drift / 2.0
        vibration = abs(rng.gauss(0.02, 0.004))
        injected: str | None = None
        if last is not None and fault_left == 0 and rng.random() < settings.fault_rate:
            fault = rng.choice(FAULTS)
            fault_left = rng.randint(*_FAULT_LENGTH)
        if last is not None and fault_left > 0:
            injected = fault
            fault_left -= 1
            if fault == "spike":
                temperature += rng.choice((-1.0, 1.0)) * rng.uniform(6.0, 10.0)
            elif fault == "stuck":
                temperature, humidity, vibration = last.temperature, last.humidity, last.vibration
            else:
                vibration += rng.uniform(0.1, 0.3)
        reading = Reading(
            sequence=sequence,
            timestamp=timestamp,
            temperature=temperature,
            humidity=humidity,
            vibration=vibration,
            fault=injected,
        )
        last = reading
        sequence += 1
        yield reading
