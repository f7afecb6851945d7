"""Hooks other runtime services attach to the deployment pipeline.

:meth:`redact` runs once, when a deployment is submitted, before it is persisted. Applying it then calls, in
order: :meth:`prepare` on the planned tree (before anything is written), :meth:`validate`
(components may reject their new configuration), :meth:`before_update` (components may defer the update),
then activates, and calls :meth:`after_update` once it succeeded. The base class does nothing at each step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgewise.runtime.deployment.document import DeploymentDocument


class DeploymentHook:
    """Override what you need; every method of the base class is a no-op. Called on the event loop."""

    def redact(self, document: DeploymentDocument) -> DeploymentDocument:
        """Return the document as it may be persisted (e.g. with secret values moved out of it). Must not raise."""
        return document

    def prepare(self, document: DeploymentDocument, planned: dict[str, Any]) -> dict[str, Any]:
        """Return the tree to activate (e.g. with secrets moved out of it). May raise DeploymentError."""
        return planned

    async def validate(self, document: DeploymentDocument, services: Mapping[str, Any]) -> str | None:
        """Return why the new configuration is rejected, or None to accept it."""
        return None

    async def before_update(self, document: DeploymentDocument) -> None:
        """Runs just before activation; may wait (for components deferring the update)."""

    async def after_update(self, document: DeploymentDocument) -> None:
        """Runs after a successful deployment."""
