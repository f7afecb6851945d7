"""What the deployment stages that ask components share: their subscribers and the clock they wait on.

Two stages negotiate with running components: :mod:`~edgewise.runtime.deployment.deferral` (components may
defer an update) and :mod:`~edgewise.runtime.deployment.validation` (components may reject their new
configuration). Each keeps its :class:`Subscribers`, reached through :data:`Send` callables so that the stages
know nothing of IPC, and waits for answers until a deadline on a :class:`DeploymentClock`: the event loop's
time by default, a fake one in tests so that a wait of minutes takes milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Queues one event for a subscriber; False when the subscriber is gone or cannot take more.
Send = Callable[[Mapping[str, Any]], bool]


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


@dataclass(frozen=True, slots=True)
class DeploymentClock:
    """A monotonic time in seconds and a sleep that follows it. Must be used from the event loop."""

    now: Callable[[], float] = _loop_time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def wait_any(self, futures: Collection[asyncio.Future[Any]], deadline: float) -> None:
        """Return once one of ``futures`` is done or :attr:`now` reaches ``deadline``, whichever comes first.

        The futures are left as they are (never cancelled).
        """
        if any(future.done() for future in futures):
            return
        remaining = deadline - self.now()
        if remaining <= 0:
            return
        timer = asyncio.ensure_future(self.sleep(remaining))
        try:
            await asyncio.wait({*futures, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()


class Subscribers:
    """The components subscribed to one stage's events, each through one or more subscriptions."""

    def __init__(self, on_gone: Callable[[str], None]) -> None:
        """
        Args:
            on_gone: called with a component's name when its last subscription ends.
        """
        self._on_gone = on_gone
        self._sends: dict[str, list[Send]] = {}

    def add(self, component: str, send: Send) -> Callable[[], None]:
        """Subscribe ``component`` through ``send``; returns the function that ends this subscription."""
        self._sends.setdefault(component, []).append(send)
        return lambda: self._remove(component, send)

    def _remove(self, component: str, send: Send) -> None:
        # By identity: two subscriptions of one component may pass equal callables.
        sends = [other for other in self._sends.get(component, []) if other is not send]
        if sends:
            self._sends[component] = sends
            return
        if self._sends.pop(component, None) is not None:
            self._on_gone(component)

    def __contains__(self, component: object) -> bool:
        return component in self._sends

    def __iter__(self) -> Iterator[str]:
        """The subscribed components (a snapshot: sending may end subscriptions)."""
        return iter(list(self._sends))

    def send(self, component: str, event: Mapping[str, Any]) -> bool:
        """Send ``event`` through every subscription of ``component``; whether at least one took it."""
        # A list, not a generator: every subscription gets the event, not only those up to the first taker.
        return any([send(event) for send in self._sends.get(component, [])])

    def broadcast(self, event: Mapping[str, Any]) -> set[str]:
        """Send ``event`` to every subscriber; the components that took it."""
        return {component for component in self if self.send(component, event)}
