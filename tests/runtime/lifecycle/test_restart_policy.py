"""Error counting per originating state and the retry back-off."""

from __future__ import annotations

from edgewise.runtime.lifecycle.restart import ErrorCounter, RestartBackoff
from edgewise.runtime.lifecycle.states import ComponentState

S = ComponentState


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_errors_add_up_per_originating_state() -> None:
    counter = ErrorCounter(ManualClock())

    assert counter.record(S.RUNNING, window=3600) == 1
    assert counter.record(S.RUNNING, window=3600) == 2
    assert counter.record(S.STARTING, window=3600) == 1
    assert counter.counts() == {S.RUNNING: 2, S.STARTING: 1}


def test_a_gap_of_a_whole_window_starts_the_count_again() -> None:
    clock = ManualClock()
    counter = ErrorCounter(clock)
    counter.record(S.RUNNING, window=60)
    clock.now = 59.9
    assert counter.record(S.RUNNING, window=60) == 2

    clock.now = 59.9 + 60
    assert counter.record(S.RUNNING, window=60) == 1


def test_clearing_forgets_one_state_or_all() -> None:
    counter = ErrorCounter(ManualClock())
    counter.record(S.RUNNING, window=60)
    counter.record(S.NEW, window=60)

    counter.clear(S.RUNNING)
    assert counter.counts() == {S.NEW: 1}
    counter.clear_all()
    assert counter.counts() == {}


def test_first_retry_is_immediate_then_doubles_up_to_the_cap() -> None:
    backoff = RestartBackoff(base=1.0, cap=5.0, jitter=0.0)

    assert [backoff.delay(errors) for errors in range(1, 7)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.delay(10_000) == 5.0


def test_jitter_adds_at_most_its_share() -> None:
    backoff = RestartBackoff(base=2.0, cap=30.0, jitter=0.1)

    assert backoff.delay(2, rng=lambda: 0.0) == 2.0
    assert backoff.delay(2, rng=lambda: 1.0) == 2.2
    assert backoff.delay(1, rng=lambda: 1.0) == 0.0
