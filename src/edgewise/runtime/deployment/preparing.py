"""Stage *prepare*: install the versions chosen from the source's offer, and plan the next stored tree.

Installing downloads (fleet) or copies (local) what the chosen versions need into the component store;
planning turns the resolution and the document into the next ``services`` tree (:mod:`.plan`). Nothing the
runtime runs changes here: a failure leaves the device as it was (``FAILED_NO_STATE_CHANGE``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.plan import ContextFactory, plan_services
from edgewise.runtime.deployment.resolving import ResolvedDeployment
from edgewise.runtime.deployment.sources import Offer, run_to_completion

Tree = dict[str, Any]


async def prepare(
    document: DeploymentDocument,
    previous: Mapping[str, Any],
    resolved: ResolvedDeployment,
    offer: Offer,
    *,
    platform: Mapping[str, str],
    context: ContextFactory,
) -> Tree:
    """Install what ``offer`` has of the chosen versions, then return the tree to activate: ``previous`` with
    the planned ``services`` and the new ``groups``.

    Raises:
        DeploymentError: an artifact could not be installed, a component has no manifest for this platform,
            or a RESET pointer is invalid.
    """
    await offer.install(resolved.resolution.components)
    services = await run_to_completion(
        _plan, previous.get("services") or {}, resolved, document, platform, context
    )
    return {**copy.deepcopy(dict(previous)), "services": services, "groups": resolved.groups}


def _plan(
    current: Mapping[str, Any],
    resolved: ResolvedDeployment,
    document: DeploymentDocument,
    platform: Mapping[str, str],
    context: ContextFactory,
) -> Tree:
    return plan_services(
        current, resolved.resolution, document, roots=resolved.roots, platform=platform, context=context
    )
