"""Turns to send: by priority, at most ``concurrency`` at once, and the shared bandwidth limit (fake clock)."""

from __future__ import annotations

import asyncio

from tests.support.clock import FakeClock
from tests.support.waiting import eventually

from edgewise.runtime.streams.export import ExportClock, ExportScheduler


def make_clock(clock: FakeClock) -> ExportClock:
    return ExportClock(now=clock.now, sleep=clock.sleep, wall_millis=lambda: int(clock.time * 1000))


async def test_waiting_sends_go_by_priority_then_arrival() -> None:
    scheduler = ExportScheduler(concurrency=1)
    order: list[str] = []
    gate = asyncio.Event()

    async def send(name: str, priority: int) -> None:
        async with scheduler.turn(priority=priority, size=1):
            order.append(name)
            await gate.wait()

    first = asyncio.create_task(send("first", 10))
    await eventually(lambda: order == ["first"])
    waiting = [
        asyncio.create_task(send(name, priority))
        for name, priority in [("low", 9), ("urgent-1", 1), ("middle", 5), ("urgent-2", 1)]
    ]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *waiting)

    assert order == ["first", "urgent-1", "urgent-2", "middle", "low"]


async def test_the_bandwidth_limit_makes_sends_wait_for_their_bytes() -> None:
    clock = FakeClock()
    scheduler = ExportScheduler(max_bandwidth=1000, clock=make_clock(clock))
    sent: list[float] = []

    async def send(size: int) -> None:
        async with scheduler.turn(priority=5, size=size):
            sent.append(clock.time)

    await send(1000)  # a full bucket pays for the first second
    second = asyncio.create_task(send(500))
    await eventually(lambda: clock.sleeping, what="a wait for tokens")
    assert clock.sleeping == [0.5]
    clock.advance(0.5)
    await second
    # A batch larger than a second's worth waits for a full bucket, then leaves it in debt.
    third = asyncio.create_task(send(3000))
    await eventually(lambda: clock.sleeping)
    assert clock.sleeping == [1.0]
    clock.advance(1.0)
    await third
    fourth = asyncio.create_task(send(1))
    await eventually(lambda: clock.sleeping)
    assert clock.sleeping == [2.001]
    clock.advance(2.001)
    await fourth

    assert sent == [0.0, 0.5, 1.5, 3.501]


async def test_an_urgent_send_overtakes_one_waiting_for_bandwidth() -> None:
    clock = FakeClock()
    scheduler = ExportScheduler(max_bandwidth=100, clock=make_clock(clock))
    order: list[str] = []

    async def send(name: str, priority: int, size: int) -> None:
        async with scheduler.turn(priority=priority, size=size):
            order.append(name)

    await send("drain", 5, 100)
    slow = asyncio.create_task(send("slow", 10, 100))
    await eventually(lambda: clock.sleeping)
    urgent = asyncio.create_task(send("urgent", 1, 100))
    await eventually(lambda: len(clock.sleeping) == 2, what="both sends waiting for tokens")
    clock.advance(1.0)
    await eventually(lambda: order == ["drain", "urgent"])
    clock.advance(1.0)
    await asyncio.gather(slow, urgent)

    assert order == ["drain", "urgent", "slow"]


async def test_a_cancelled_wait_gives_its_turn_away() -> None:
    scheduler = ExportScheduler(concurrency=1)
    gate = asyncio.Event()
    done: list[str] = []

    async def send(name: str) -> None:
        async with scheduler.turn(priority=5, size=1):
            await gate.wait()
            done.append(name)

    holder = asyncio.create_task(send("holder"))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(send("cancelled"))
    after = asyncio.create_task(send("after"))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    await asyncio.gather(holder, after)

    assert done == ["holder", "after"]
