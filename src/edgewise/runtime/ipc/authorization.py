"""IPC authorization: the ``accessControl`` policies of component configurations.

A policy lives in the *calling* component's configuration under
``accessControl.<service id>.<policy id> = {operations: [...], resources: [...]}`` (or the same structure
as a JSON string). Policies only allow; anything not allowed is denied. In resources, ``*`` matches any
character sequence; ``${*}``, ``${?}`` and ``${$}`` stand for a literal ``*``, ``?`` and ``$``.

Greengrass documents them in "Authorize components to perform IPC operations" at
https://docs.aws.amazon.com/greengrass/v2/developerguide/interprocess-communication.html.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from edgewise.runtime.ipc.errors import UnauthorizedError
from edgewise.topics import filter_covers

logger = logging.getLogger(__name__)

#: The identity of the ``edgewise`` CLI's connection: allowed every operation, like greengrass-cli.
CLI_IDENTITY = "aws.greengrass.Cli"

#: Decisions kept between configuration changes; past it the kept ones are dropped and gathered again.
MAX_KEPT_DECISIONS = 4096

_ESCAPES = {"${*}": "*", "${?}": "?", "${$}": "$"}


@lru_cache(maxsize=4096)
def _resource_pattern(resource: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(resource):
        escape = resource[index : index + 4]
        if escape in _ESCAPES:
            parts.append(re.escape(_ESCAPES[escape]))
            index += 4
        elif resource[index] == "*":
            parts.append(".*")
            index += 1
        else:
            parts.append(re.escape(resource[index]))
            index += 1
    return re.compile("".join(parts), re.DOTALL)


def resource_matches(policy_resource: str, resource: str, *, mqtt: bool = False) -> bool:
    """True when a policy resource covers ``resource``.

    ``*`` in a policy resource matches any character sequence. With ``mqtt`` (the ``mqttproxy`` service),
    ``+`` and ``#`` in the policy are MQTT wildcards too, and a requested filter with wildcards is allowed only
    when the policy covers every topic it can match; otherwise they are literal characters.
    """
    if policy_resource == "*":
        return True
    if _resource_pattern(policy_resource).fullmatch(resource) is not None:
        return True
    return mqtt and "*" not in policy_resource and filter_covers(policy_resource, resource)


def _access_control(config: Any) -> Any:
    if not isinstance(config, Mapping):
        return None
    access = config.get("accessControl")
    if isinstance(access, str):
        try:
            access = json.loads(access)
        except json.JSONDecodeError:
            logger.warning("Ignoring an accessControl value that is not valid JSON")
            return None
    return access


def _policies(access: Any, service: str) -> list[Mapping[str, Any]]:
    if not isinstance(access, Mapping):
        return []
    by_id = access.get(service)
    if not isinstance(by_id, Mapping):
        return []
    return [policy for policy in by_id.values() if isinstance(policy, Mapping)]


class Authorizer:
    """Checks calls against the policies in each component's current configuration.

    Policies are read once per component, and each decision is kept per (component, service, operation,
    resource), until :meth:`invalidate`, which the kernel calls on every configuration change, so a changed
    policy applies to the very next call. A publisher checks the same few topics again and again, so a kept
    decision turns the policy walk and pattern matching into one dictionary look-up per message.
    """

    def __init__(self, configuration_of: Callable[[str], Any]) -> None:
        self._configuration_of = configuration_of
        self._access: dict[str, Any] = {}
        self._decisions: dict[tuple[str, str, str, str, bool], bool] = {}

    def invalidate(self) -> None:
        """Forget every policy and decision kept so far. Must be called whenever the configuration changes."""
        self._access.clear()
        self._decisions.clear()

    def _access_of(self, component: str) -> Any:
        if component not in self._access:
            self._access[component] = _access_control(self._configuration_of(component))
        return self._access[component]

    def is_allowed(
        self, component: str, service: str, operation: str, resource: str, *, mqtt: bool = False
    ) -> bool:
        key = (component, service, operation, resource, mqtt)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide(component, service, operation, resource, mqtt=mqtt)
            if len(self._decisions) >= MAX_KEPT_DECISIONS:
                # Callers choosing ever new topics must not grow the runtime without bound: start afresh.
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def _decide(self, component: str, service: str, operation: str, resource: str, *, mqtt: bool) -> bool:
        if component == CLI_IDENTITY:
            return True
        for policy in _policies(self._access_of(component), service):
            operations = policy.get("operations")
            resources = policy.get("resources") or ["*"]
            if not isinstance(operations, list) or not isinstance(resources, list):
                continue
            if operation not in operations and "*" not in operations:
                continue
            if any(
                isinstance(item, str) and resource_matches(item, resource, mqtt=mqtt) for item in resources
            ):
                return True
        return False

    def check(
        self, component: str, service: str, operation: str, resource: str, *, mqtt: bool = False
    ) -> None:
        """Raises:
        UnauthorizedError: naming the component, operation and resource.
        """
        if not self.is_allowed(component, service, operation, resource, mqtt=mqtt):
            raise UnauthorizedError(
                f"Principal {component} is not authorized to perform {service}:{operation} on resource {resource}"
            )
