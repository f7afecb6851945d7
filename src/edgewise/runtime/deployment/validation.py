"""Validate: components subscribed to configuration validation may reject their new configuration.

Before a deployment changes the configuration of a subscribed component, the component receives the new
configuration (a ``validateConfigurationUpdateEvent``) and answers with a report. One rejection fails the
deployment with no state change, its reason naming the component and its message. Components that stay
silent until ``document.validation_timeout``, or that leave while it runs, do not hold it back.

This module knows no IPC: a subscriber is a :data:`~edgewise.runtime.deployment.negotiation.Send` callable
(the configuration IPC service passes its event stream's ``send_nowait``), and the IPC service turns
``SendConfigurationValidityReport`` calls into :meth:`ConfigurationValidation.report`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgewise.errors import EdgewiseError
from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.hooks import DeploymentHook
from edgewise.runtime.deployment.negotiation import DeploymentClock, Send, Subscribers

logger = logging.getLogger(__name__)


class ValidationNotPendingError(EdgewiseError):
    """A validity report that answers no validation event: it timed out, or was never asked for."""

    def __init__(self, component: str, deployment_id: str) -> None:
        super().__init__(
            f"No configuration validation of deployment {deployment_id} is pending for component "
            f"{component}; it may have timed out"
        )
        self.component = component
        self.deployment_id = deployment_id


@dataclass(frozen=True, slots=True)
class _Report:
    """A component's answer to a validation event."""

    accepted: bool
    message: str


class ConfigurationValidation(DeploymentHook):
    """The validate stage: asks subscribers whose configuration changes, fails the deployment they reject."""

    def __init__(
        self, configuration_of: Callable[[str], Any], *, clock: DeploymentClock | None = None
    ) -> None:
        """
        Args:
            configuration_of: a component's current configuration (None when it has none); a component whose
                configuration the deployment leaves as it is is not asked.
            clock: where waiting reads the time.
        """
        self._configuration_of = configuration_of
        self._clock = clock or DeploymentClock()
        self._subscribers = Subscribers(on_gone=self._gone)
        self._pending: dict[tuple[str, str], asyncio.Future[_Report | None]] = {}

    def subscribe(self, component: str, send: Send) -> Callable[[], None]:
        """Send ``component``'s validation events through ``send``; returns the function that unsubscribes."""
        return self._subscribers.add(component, send)

    def _gone(self, component: str) -> None:
        # Nobody is left to answer for the component: stop waiting for it.
        for (_, name), future in self._pending.items():
            if name == component and not future.done():
                future.set_result(None)

    def report(self, component: str, deployment_id: str, *, accepted: bool, message: str = "") -> None:
        """Take ``component``'s answer to the validation event of ``deployment_id``.

        Raises:
            ValidationNotPendingError: no validation of ``deployment_id`` waits for ``component``.
        """
        future = self._pending.get((deployment_id, component))
        if future is None or future.done():
            raise ValidationNotPendingError(component, deployment_id)
        future.set_result(_Report(accepted, message))

    async def validate(self, document: DeploymentDocument, services: Mapping[str, Any]) -> str | None:
        """Ask subscribed components whose configuration changes; the reason of the first rejection, if any."""
        deployment_id = document.deployment_id
        loop = asyncio.get_running_loop()
        waiting: dict[str, asyncio.Future[_Report | None]] = {}
        for component in self._subscribers:
            node = services.get(component)
            if not isinstance(node, Mapping):
                continue
            configuration = node.get("configuration") or {}
            if configuration == (self._configuration_of(component) or {}):
                continue
            event = {
                "validateConfigurationUpdateEvent": {
                    "configuration": configuration,
                    "deploymentId": deployment_id,
                }
            }
            if self._subscribers.send(component, event):
                waiting[component] = self._pending[(deployment_id, component)] = loop.create_future()
        if not waiting:
            return None
        logger.info(
            "Deployment %s: waiting up to %.1f s for %s to validate their new configuration",
            deployment_id,
            document.validation_timeout,
            ", ".join(sorted(waiting)),
        )
        try:
            return await self._first_rejection(deployment_id, waiting, document.validation_timeout)
        finally:
            for component in waiting:
                del self._pending[(deployment_id, component)]

    async def _first_rejection(
        self, deployment_id: str, waiting: Mapping[str, asyncio.Future[_Report | None]], timeout: float
    ) -> str | None:
        """Wait for the reports; the reason naming the rejecting components as soon as one rejects."""
        clock = self._clock
        pending = set(waiting.values())
        deadline = clock.now() + timeout
        while pending and clock.now() < deadline:
            await clock.wait_any(pending, deadline)
            pending = {future for future in pending if not future.done()}
            rejections = [
                f"{component} rejected its new configuration: {report.message or 'no reason given'}"
                for component, future in sorted(waiting.items())
                if future.done() and (report := future.result()) is not None and not report.accepted
            ]
            if rejections:
                return "; ".join(rejections)
        silent = sorted(component for component, future in waiting.items() if not future.done())
        if silent:
            logger.warning(
                "Deployment %s: no configuration validity report from %s within %.1f s; going ahead",
                deployment_id,
                ", ".join(silent),
                timeout,
            )
        return None
