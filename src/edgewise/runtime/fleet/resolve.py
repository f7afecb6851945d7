"""Recipes from the cloud: the ``components/resolve`` request of docs/device-protocol.md, the dependency closure
it is asked for round by round, and the resolution over every group the device belongs to.

The cloud answers, for each component name and version requirement, the published versions that satisfy it
(recipe, and a signed download URL per artifact). The device asks for its new root components, then for the
dependencies of every recipe it received, until nothing new is needed; the runtime's own resolver then
chooses versions over the union of the cloud's recipes and the installed ones.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgewise.recipe import Recipe, RecipeError, parse_recipe
from edgewise.runtime.deployment.errors import DeploymentError
from edgewise.runtime.deployment.resolution import Resolution, ResolutionError, resolve, union_group_roots
from edgewise.runtime.fleet.errors import ComponentResolveError

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

#: The most versions the cloud lists per requirement, and bounds on how much one deployment may fetch.
MAX_VERSIONS = 20
#: The most names one request may carry (the cloud refuses more).
MAX_NAMES_PER_REQUEST = 100
MAX_ROUNDS = 50
MAX_OFFERS = 2000
_SHA256_BYTES = 32


@dataclass(frozen=True)
class ArtifactSource:
    """Where one artifact is downloaded from, and what it must be."""

    url: str
    digest: str  #: base64 SHA-256
    size: int | None = None


@dataclass(frozen=True)
class ComponentOffer:
    """One published component version the cloud offered."""

    recipe: Recipe
    text: bytes  #: the recipe as stored in the component store (JSON)
    artifacts: Mapping[str, ArtifactSource]  #: by artifact ``Uri``


Ask = Callable[[dict[str, str]], Awaitable[dict[str, list[ComponentOffer]]]]


def _artifact(value: Any, where: str) -> ArtifactSource:
    if not isinstance(value, Mapping):
        raise ComponentResolveError(f"{where}: expected an object with url, digest and size")
    url, digest, size = value.get("url"), value.get("digest"), value.get("size")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ComponentResolveError(f"{where}.url: expected an https:// URL, got {url!r:.200}")
    try:
        if not isinstance(digest, str) or len(base64.b64decode(digest, validate=True)) != _SHA256_BYTES:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ComponentResolveError(
            f"{where}.digest: expected a base64 SHA-256, got {digest!r:.100}"
        ) from None
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ComponentResolveError(f"{where}.size: expected a number of bytes, got {size!r:.100}")
    return ArtifactSource(url=url, digest=digest, size=size)


def _offer(name: str, value: Any, where: str) -> ComponentOffer:
    if not isinstance(value, Mapping):
        raise ComponentResolveError(f"{where}: expected an object with version, recipe and artifacts")
    document = value.get("recipe")
    if not isinstance(document, Mapping):
        raise ComponentResolveError(f"{where}.recipe: expected the recipe as an object")
    try:
        recipe = parse_recipe(document, source_name=f"{where}.recipe")
    except RecipeError as exc:
        raise ComponentResolveError(str(exc), error_types=("COMPONENT_RECIPE_ERROR",)) from None
    if recipe.name != name or recipe.version != value.get("version"):
        raise ComponentResolveError(
            f"{where}: the recipe is {recipe.name} {recipe.version}, "
            f"listed as {name} {value.get('version')!r:.100}"
        )
    artifacts = value.get("artifacts", {})
    if not isinstance(artifacts, Mapping):
        raise ComponentResolveError(f"{where}.artifacts: expected an object keyed by artifact Uri")
    sources = {str(uri): _artifact(entry, f"{where}.artifacts.{uri}") for uri, entry in artifacts.items()}
    text = json.dumps(document, indent=2, sort_keys=True).encode("utf-8")
    return ComponentOffer(recipe=recipe, text=text, artifacts=sources)


def parse_resolve_reply(body: Mapping[str, Any]) -> dict[str, list[ComponentOffer]]:
    """The offers of a ``resolve/accepted`` answer, by component name.

    Raises:
        ComponentResolveError: naming the field that is wrong.
    """
    components = body.get("components")
    if not isinstance(components, Mapping):
        raise ComponentResolveError("components: expected an object of component names")
    offers: dict[str, list[ComponentOffer]] = {}
    for name, versions in components.items():
        if not isinstance(versions, list) or len(versions) > MAX_VERSIONS:
            raise ComponentResolveError(
                f"components.{name}: expected a list of at most {MAX_VERSIONS} versions"
            )
        offers[str(name)] = [
            _offer(str(name), value, f"components.{name}[{index}]") for index, value in enumerate(versions)
        ]
    return offers


class ComponentCatalog:
    """Asks the cloud for component versions over the cloud link (request, then answer by client token)."""

    def __init__(self, link: CloudLink, thing: str, *, timeout: float = 30.0, attempts: int = 3) -> None:
        self._link = link
        self._topic = f"$aws/things/{thing}/edgewise/components/resolve"
        self._timeout = timeout
        self._attempts = attempts
        self._waiting: dict[str, asyncio.Future[Mapping[str, Any]]] = {}
        self._subscriptions: list[CloudSubscription] = []

    async def start(self) -> None:
        for outcome in ("accepted", "rejected"):
            subscription = await self._link.subscribe(f"{self._topic}/{outcome}", self._received, qos=1)
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
        for _ in range(self._attempts):
            await self._link.wait_connected()
            token = uuid.uuid4().hex
            future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
            self._waiting[token] = future
            try:
                request = {"clientToken": token, "components": requirements}
                await self._link.publish(self._topic, json.dumps(request).encode(), qos=1)
                async with asyncio.timeout(self._timeout):
                    body = await future
            except TimeoutError:
                logger.warning(
                    "No answer to the component resolve request in %.0f s; asking again", self._timeout
                )
                continue
            finally:
                self._waiting.pop(token, None)
            if "code" in body:
                raise ComponentResolveError(
                    f"The cloud refused to resolve {', '.join(sorted(requirements))}: "
                    f"{body.get('code')}: {body.get('message')}"
                )
            return parse_resolve_reply(body)
        raise ComponentResolveError(
            f"The cloud did not answer the component resolve request ({self._attempts} attempts, "
            f"{self._timeout:.0f} s each)",
            error_types=("NETWORK_ERROR",),
        )

    def _received(self, message: CloudMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            logger.warning("Ignoring a component resolve answer that is not a JSON object")
            return
        if message.topic.endswith("/rejected"):
            body.setdefault("code", "InternalError")
        future = self._waiting.get(str(body.get("clientToken")))
        if future is not None and not future.done():
            future.set_result(body)


async def fetch_closure(
    roots: Mapping[str, str], ask: Ask, *, skip: Collection[str] = ()
) -> dict[str, dict[str, ComponentOffer]]:
    """Every offer needed to resolve ``roots``: asked round by round, the roots first, then the dependencies
    of every version received, until no (name, requirement) is new. Names in ``skip`` (built-ins) are not
    asked for. Returns offers by name and version.

    Raises:
        ComponentResolveError: from ``ask``, or when the closure grows past the bounds.
    """
    asked: set[tuple[str, str]] = set()
    offers: dict[str, dict[str, ComponentOffer]] = {}
    wanted = [(name, requirement) for name, requirement in roots.items() if name not in skip]
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
        for start in range(0, len(names), MAX_NAMES_PER_REQUEST):
            part = {name: batch[name] for name in names[start : start + MAX_NAMES_PER_REQUEST]}
            answer = await ask(part)
            reply.update({name: answer.get(name, []) for name in part})
        wanted = later
        for name in batch:
            for offer in reply.get(name, []):
                offers.setdefault(name, {}).setdefault(offer.recipe.version, offer)
                wanted += [
                    (dependency.name, dependency.version_requirement)
                    for dependency in offer.recipe.dependencies.values()
                    if dependency.name not in skip
                ]
        if sum(map(len, offers.values())) > MAX_OFFERS:
            raise ComponentResolveError(
                f"The dependency closure has more than {MAX_OFFERS} component versions"
            )
    raise ComponentResolveError(f"The dependency closure is deeper than {MAX_ROUNDS} levels")


def _reaches(roots: Collection[str], target: str, candidates: Mapping[str, Sequence[Recipe]]) -> bool:
    """Whether ``target`` is one of ``roots`` or a dependency of some version of them, transitively."""
    seen: set[str] = set()
    frontier = list(roots)
    while frontier:
        name = frontier.pop()
        if name == target:
            return True
        if name in seen:
            continue
        seen.add(name)
        for recipe in candidates.get(name, ()):
            frontier.extend(recipe.dependencies)
    return False


def resolve_groups(
    groups: Mapping[str, Mapping[str, str]],
    candidates: Mapping[str, Sequence[Recipe]],
    *,
    builtins: Mapping[str, str],
) -> Resolution:
    """Resolve the union of every group's root components (reference §3.5).

    Raises:
        DeploymentError: two groups deploy one component at different versions, or no version set satisfies
            every requirement; the message names the groups involved.
    """
    roots = union_group_roots(groups)
    try:
        return resolve(roots, candidates, builtins=builtins)
    except ResolutionError as exc:
        involved = [
            f"{group} ({', '.join(f'{name} {version}' for name, version in sorted(members.items()))})"
            for group, members in sorted(groups.items())
            if _reaches(members, exc.component, candidates)
        ]
        where = f"; {exc.component} is required through {' and '.join(involved)}" if involved else ""
        raise DeploymentError(f"{exc}{where}", error_types=("DEPENDENCY_RESOLUTION_ERROR",)) from exc
