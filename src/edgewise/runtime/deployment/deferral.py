"""Notify and defer: components subscribed to component updates may hold a deployment back.

Only deployments with ``componentUpdatePolicy.action`` NOTIFY_COMPONENTS take this stage. Every subscriber
gets a ``preUpdateEvent`` and may answer with a deferral. An answer with ``recheck_after_ms`` > 0 postpones
the update; after the longest such delay the subscribers are asked again. The deployment goes ahead once
every subscriber answered 0, or once ``document.update_timeout`` has passed since the first event, whichever
comes first. A subscriber that leaves during a round no longer holds it back. A successful deployment then
sends every subscriber a ``postUpdateEvent``.

This module knows no IPC: a subscriber is a :data:`~edgewise.runtime.deployment.negotiation.Send` callable
(the lifecycle IPC service passes its event stream's ``send_nowait``), and the IPC service turns
``DeferComponentUpdate`` calls into :meth:`ComponentUpdateDeferral.defer`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edgewise.errors import EdgewiseError
from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.hooks import DeploymentHook
from edgewise.runtime.deployment.negotiation import DeploymentClock, Send, Subscribers

logger = logging.getLogger(__name__)


class UpdateNotPendingError(EdgewiseError):
    """A deferral that answers no update event: the time to defer has passed, or it was never announced."""

    def __init__(self, component: str, deployment_id: str) -> None:
        super().__init__(
            f"No update of deployment {deployment_id} is waiting for {component}: the time limit to "
            "defer it has passed, or it was never announced"
        )
        self.component = component
        self.deployment_id = deployment_id


class _UpdateRound:
    """One round of ``preUpdateEvent``: who was asked, who has not answered, the longest deferral."""

    def __init__(self, deployment_id: str, asked: set[str]) -> None:
        self.deployment_id = deployment_id
        self.asked = frozenset(asked)
        self.unanswered = set(asked)
        self.defer_ms = 0
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def answer(self, component: str, defer_ms: int) -> None:
        self.defer_ms = max(self.defer_ms, defer_ms)
        self.unanswered.discard(component)
        if not self.unanswered and not self.answered.done():
            self.answered.set_result(None)


class ComponentUpdateDeferral(DeploymentHook):
    """The notify-and-defer stage: announces updates to subscribers and waits while they defer them."""

    def __init__(self, *, clock: DeploymentClock | None = None) -> None:
        self._clock = clock or DeploymentClock()
        self._subscribers = Subscribers(on_gone=self._gone)
        self._round: _UpdateRound | None = None

    def subscribe(self, component: str, send: Send) -> Callable[[], None]:
        """Send ``component``'s update events through ``send``; returns the function that unsubscribes."""
        return self._subscribers.add(component, send)

    def is_subscribed(self, component: str) -> bool:
        """Whether ``component`` has at least one subscription."""
        return component in self._subscribers

    def _gone(self, component: str) -> None:
        # Nobody is left to answer for the component: it no longer holds the update back.
        if self._round is not None and component in self._round.unanswered:
            self._round.answer(component, 0)

    def defer(
        self, component: str, deployment_id: str, recheck_after_ms: int, message: str | None = None
    ) -> None:
        """Take ``component``'s answer to the current round: 0 to go ahead, or how long to wait first.

        Raises:
            UpdateNotPendingError: no round of ``deployment_id`` is waiting for ``component``.
        """
        update = self._round
        if update is None or update.deployment_id != deployment_id or component not in update.asked:
            raise UpdateNotPendingError(component, deployment_id)
        if recheck_after_ms:
            logger.info(
                "Component %s defers deployment %s by %d ms: %s",
                component,
                deployment_id,
                recheck_after_ms,
                message or "no reason given",
            )
        update.answer(component, recheck_after_ms)

    async def before_update(self, document: DeploymentDocument) -> None:
        """Announce the update and wait as the subscribers ask, at most ``document.update_timeout`` seconds."""
        clock = self._clock
        deadline = clock.now() + document.update_timeout
        while True:
            defer_s = await self._ask(document.deployment_id, deadline) / 1000
            if defer_s <= 0:
                return
            if clock.now() + defer_s >= deadline:
                logger.warning(
                    "Deployment %s: components defer it past its %.1f s update timeout; going ahead then",
                    document.deployment_id,
                    document.update_timeout,
                )
                await clock.sleep(max(deadline - clock.now(), 0.0))
                return
            await clock.sleep(defer_s)

    async def _ask(self, deployment_id: str, deadline: float) -> int:
        """Send one round of ``preUpdateEvent``; the longest deferral asked for, 0 to go ahead."""
        event = {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": False}}
        asked = self._subscribers.broadcast(event)
        if not asked:
            return 0
        update = self._round = _UpdateRound(deployment_id, asked)
        try:
            await self._clock.wait_any([update.answered], deadline)
        finally:
            self._round = None
        if not update.answered.done():
            logger.warning(
                "Deployment %s: no answer to the update event from %s within its update timeout; going ahead",
                deployment_id,
                ", ".join(sorted(update.unanswered)),
            )
            return 0
        return update.defer_ms

    async def after_update(self, document: DeploymentDocument) -> None:
        """Tell every subscriber that the update is done."""
        event = {"postUpdateEvent": {"deploymentId": document.deployment_id}}
        self._subscribers.broadcast(event)
