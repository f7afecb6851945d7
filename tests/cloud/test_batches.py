"""Requests answered in batches: those that arrive while a batch is in the store go in the next one, at most
``most`` at a time, each asker gets its own answer or its own exception, and closing cancels who still waits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from edgewise.cloud.batches import RequestBatches, outcome_of
from tests.support.waiting import eventually


class Store:
    """Answers ``n`` with ``n * 10`` (a negative ``n`` with its own ValueError); the first batch waits for
    ``release``."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def answer(self, requests: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(requests))
        self.entered.set()
        assert self.release.wait(10), "the test never released the store"
        return [ValueError(f"no answer to {n}") if n < 0 else n * 10 for n in requests]


async def ask_while_the_first_batch_waits(
    batches: RequestBatches[int, int], store: Store, first: int, then: Sequence[int]
) -> list[asyncio.Task[int]]:
    """Ask ``first``, and once its batch is in the store, ``then``; the tasks, in that order."""
    asked: list[int] = []

    async def ask(n: int) -> int:
        asked.append(n)  # in the same step as answered() queues it
        return await batches.answered(n)

    tasks = [asyncio.create_task(ask(first))]
    assert await asyncio.to_thread(store.entered.wait, 10)
    tasks += [asyncio.create_task(ask(n)) for n in then]
    await eventually(lambda: len(asked) == 1 + len(then), what="every request queued")
    return tasks


async def test_requests_that_arrive_meanwhile_go_together_in_the_next_batch_at_most_most() -> None:
    store = Store()
    batches = RequestBatches[int, int](store.answer, most=3, name="test")
    tasks = await ask_while_the_first_batch_waits(batches, store, 1, [2, 3, 4, 5])
    store.release.set()
    assert await asyncio.gather(*tasks) == [10, 20, 30, 40, 50]
    assert store.batches == [[1], [2, 3, 4], [5]]
    await batches.close()


async def test_each_asker_gets_its_own_exception_and_a_failed_batch_fails_only_its_askers() -> None:
    store = Store()
    store.release.set()
    batches = RequestBatches[int, int](store.answer, most=10, name="test")
    outcomes = await asyncio.gather(batches.answered(-1), batches.answered(2), return_exceptions=True)
    assert [str(outcome) for outcome in outcomes] == ["no answer to -1", "20"]

    def broken(requests: Sequence[int]) -> list[int | Exception]:
        raise RuntimeError("the store is down")

    failing = RequestBatches[int, int](broken, most=10, name="test")
    with pytest.raises(RuntimeError, match="the store is down"):
        await failing.answered(1)
    assert await batches.answered(3) == 30  # the other batches go on
    await batches.close()
    await failing.close()


async def test_closing_cancels_the_requests_still_waiting() -> None:
    store = Store()
    batches = RequestBatches[int, int](store.answer, most=10, name="test")
    tasks = await ask_while_the_first_batch_waits(batches, store, 1, [2])
    await batches.close()
    store.release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes), outcomes


def test_one_request_s_failure_is_its_outcome_and_not_raised() -> None:
    def failing() -> int:
        raise LookupError("no such version")

    assert outcome_of(lambda: 7) == 7
    failure = outcome_of(failing)
    assert isinstance(failure, LookupError)
    assert str(failure) == "no such version"
