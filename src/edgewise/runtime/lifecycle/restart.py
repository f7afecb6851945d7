"""Restart policy as data: error counting per originating state (as Greengrass counts), and retry back-off."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from edgewise.runtime.lifecycle.states import ComponentState

#: The states whose errors are counted; an error while STOPPING is never counted.
COUNTED_STATES = (ComponentState.NEW, ComponentState.STARTING, ComponentState.RUNNING)


class ErrorCounter:
    """Recent errors of one component, kept per originating state.

    A counter is emptied when the gap since its previous error is at least the reset window, so only
    errors that follow each other closely add up to the BROKEN threshold.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._errors: dict[ComponentState, list[float]] = {}

    def record(self, origin: ComponentState, *, window: float) -> int:
        """Count one error that happened in ``origin``; return how many are now counted for it."""
        now = self._clock()
        times = self._errors.setdefault(origin, [])
        if times and now - times[-1] >= window:
            times.clear()
        times.append(now)
        return len(times)

    def clear(self, origin: ComponentState) -> None:
        """Forget the errors of ``origin``: the component left it successfully."""
        self._errors.pop(origin, None)

    def clear_all(self) -> None:
        """Forget every error (a reinstall starts afresh)."""
        self._errors.clear()

    def counts(self) -> dict[ComponentState, int]:
        """Errors currently counted, per originating state (states without errors are left out)."""
        return {state: len(times) for state, times in self._errors.items() if times}


@dataclass(frozen=True)
class RestartBackoff:
    """How long to wait before retrying after the ``errors``-th error in a row.

    The first retry is immediate; later ones wait ``min(base * 2**(errors-2), cap)`` plus up to
    ``jitter`` of that again, so components failing together do not retry in lockstep.
    """

    base: float
    cap: float
    jitter: float = 0.1

    def delay(self, errors: int, *, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before the retry that follows the ``errors``-th consecutive error."""
        if errors <= 1:
            return 0.0
        # The exponent is bounded so that a long run of errors cannot overflow the float.
        delay = min(self.base * 2.0 ** min(errors - 2, 62), self.cap)
        return delay + delay * self.jitter * rng()
