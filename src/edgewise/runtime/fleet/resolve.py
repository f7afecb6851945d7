"""Recipes from the cloud: the ``components/resolve`` request of docs/device-protocol.md (its messages are
:mod:`edgewise.protocol.resolve`), and the dependency closure it is asked for round by round.

The cloud answers, for each component name and version requirement, the published versions that satisfy it
(recipe, and a signed download URL per artifact). The device asks for its new root components, all in one
request, then for the dependencies of every recipe it received, until nothing new is needed: a deployment whose
components depend only on each other and on built-ins takes one request. The deployment service then chooses
versions over every group, from the union of the cloud's recipes and the installed ones
(:mod:`edgewise.runtime.deployment.resolving`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgewise.protocol import resolve as protocol
from edgewise.protocol.resolve import ArtifactSource
from edgewise.recipe import Recipe, RecipeError
from edgewise.runtime.fleet.errors import ComponentResolveError
from edgewise.versions import Requirement, Version, VersionError

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

#: Bounds on how much one deployment may fetch.
MAX_ROUNDS = 50
MAX_OFFERS = 2000


@dataclass(frozen=True)
class ComponentOffer:
    """One published component version the cloud offered."""

    recipe: Recipe
    text: bytes  #: the recipe as stored in the component store (JSON)
    artifacts: Mapping[str, ArtifactSource]  #: by artifact ``Uri``


Ask = Callable[[dict[str, str]], Awaitable[dict[str, list[ComponentOffer]]]]


def parse_resolve_reply(body: Mapping[str, Any]) -> dict[str, list[ComponentOffer]]:
    """The offers of a ``resolve/accepted`` answer, by component name.

    Raises:
        ComponentResolveError: naming the field that is wrong.
    """
    try:
        offers = protocol.parse_accepted(body)
    except protocol.ResolveAnswerError as exc:
        raise ComponentResolveError(str(exc)) from None
    except RecipeError as exc:
        raise ComponentResolveError(str(exc), error_types=("COMPONENT_RECIPE_ERROR",)) from None
    return {
        name: [
            ComponentOffer(
                recipe=offer.recipe,
                text=json.dumps(offer.document, indent=2, sort_keys=True).encode("utf-8"),
                artifacts=offer.artifacts,
            )
            for offer in listed
        ]
        for name, listed in offers.items()
    }


class ComponentCatalog:
    """Asks the cloud for component versions over the cloud link (request, then answer by client token)."""

    def __init__(self, link: CloudLink, thing: str, *, timeout: float = 30.0, attempts: int = 3) -> None:
        self._link = link
        self._thing = thing
        self._timeout = timeout
        self._attempts = attempts
        self._waiting: dict[str, asyncio.Future[protocol.Reply]] = {}
        self._subscriptions: list[CloudSubscription] = []

    async def start(self) -> None:
        for outcome in (protocol.ACCEPTED, protocol.REJECTED):
            topic = protocol.reply_topic(self._thing, outcome)
            subscription = await self._link.subscribe(topic, self._received, qos=1)
            self._subscriptions.append(subscription)

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()

    def abandon(self, error: BaseException) -> None:
        """Make every request waiting for an answer raise ``error`` (the deployment was cancelled)."""
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)

    async def ask(self, requirements: dict[str, str]) -> dict[str, list[ComponentOffer]]:
        """The published versions satisfying each requirement (name -> requirement text).

        Waits for the cloud connection; an attempt that gets no answer in time is repeated.

        Raises:
            ComponentResolveError: the cloud refused the request, answered something malformed, or did not
                answer any attempt.
        """
        components = {name: Requirement.parse(text) for name, text in requirements.items()}
        for _ in range(self._attempts):
            await self._link.wait_connected()
            token = uuid.uuid4().hex
            future: asyncio.Future[protocol.Reply] = asyncio.get_running_loop().create_future()
            self._waiting[token] = future
            try:
                request = protocol.ResolveRequest(components, client_token=token)
                await self._link.publish(
                    protocol.request_topic(self._thing), protocol.build_request(request), qos=1
                )
                async with asyncio.timeout(self._timeout):
                    reply = await future
            except TimeoutError:
                logger.warning(
                    "No answer to the component resolve request in %.0f s; asking again", self._timeout
                )
                continue
            finally:
                self._waiting.pop(token, None)
            rejection = protocol.rejection_of(reply)
            if rejection is not None:
                raise ComponentResolveError(
                    f"The cloud refused to resolve {', '.join(sorted(requirements))}: "
                    f"{rejection.code}: {rejection.message}"
                )
            return parse_resolve_reply(reply.body)
        raise ComponentResolveError(
            f"The cloud did not answer the component resolve request ({self._attempts} attempts, "
            f"{self._timeout:.0f} s each)",
            error_types=("NETWORK_ERROR",),
        )

    def _received(self, message: CloudMessage) -> None:
        reply = protocol.read_reply(message.topic, message.payload)
        if reply is None:
            logger.warning("Ignoring a component resolve answer that is not a JSON object")
            return
        future = None if reply.client_token is None else self._waiting.get(reply.client_token)
        if future is not None and not future.done():
            future.set_result(reply)


async def fetch_closure(
    roots: Mapping[str, str], ask: Ask, *, skip: Collection[str] = ()
) -> dict[str, dict[str, ComponentOffer]]:
    """Every offer needed to resolve ``roots``: asked round by round, the roots first, then the dependencies
    of every version received, until no (name, requirement) is new. Names in ``skip`` (built-ins) are not
    asked for, nor a dependency on a root pinned to one version (a deployment's are): no other version of it
    can be chosen, and its offer is asked for already. Returns offers by name and version.

    Raises:
        ComponentResolveError: from ``ask``, or when the closure grows past the bounds.
    """
    asked: set[tuple[str, str]] = set()
    offers: dict[str, dict[str, ComponentOffer]] = {}
    wanted = [(name, requirement) for name, requirement in roots.items() if name not in skip]
    pinned = {name for name, requirement in roots.items() if _is_version(requirement)}
    started = time.monotonic()
    for _ in range(MAX_ROUNDS):
        batch: dict[str, str] = {}
        later: list[tuple[str, str]] = []
        for name, requirement in dict.fromkeys(wanted):
            if (name, requirement) in asked:
                continue
            if name in batch:
                later.append((name, requirement))
            else:
                batch[name] = requirement
        if not batch:
            logger.info(
                "Fetched %d recipe(s) of %d component(s) in %.1f s",
                sum(map(len, offers.values())),
                len(offers),
                time.monotonic() - started,
            )
            return offers
        asked.update(batch.items())
        names = list(batch)
        reply: dict[str, list[ComponentOffer]] = {}
        for start in range(0, len(names), protocol.MAX_COMPONENTS):
            part = {name: batch[name] for name in names[start : start + protocol.MAX_COMPONENTS]}
            answer = await ask(part)
            reply.update({name: answer.get(name, []) for name in part})
        wanted = later
        for name in batch:
            for offer in reply.get(name, []):
                offers.setdefault(name, {}).setdefault(offer.recipe.version, offer)
                wanted += [
                    (dependency.name, dependency.version_requirement)
                    for dependency in offer.recipe.dependencies.values()
                    if dependency.name not in skip and dependency.name not in pinned
                ]
        if sum(map(len, offers.values())) > MAX_OFFERS:
            raise ComponentResolveError(
                f"The dependency closure has more than {MAX_OFFERS} component versions"
            )
    raise ComponentResolveError(f"The dependency closure is deeper than {MAX_ROUNDS} levels")


def _is_version(requirement: str) -> bool:
    """Whether ``requirement`` is one exact version."""
    try:
        Version.parse(requirement)
    except VersionError:
        return False
    return True
