"""The cloud's shadows as the sync reaches them: AWS IoT Device Shadow requests over the runtime's cloud link.

:class:`CloudShadows` publishes ``get``, ``update`` and ``delete`` on a shadow's topics with a ``clientToken`` of
its own and waits for the ``accepted`` or ``rejected`` answer carrying that token. It also hears what other
clients do to the watched shadows — ``update/documents`` and ``delete/accepted`` without one of its tokens —
and hands that to the sync as a :class:`~edgewise.runtime.shadow.sync_decision.SideView`; its own writes come
back on those topics too, and are recognised by their token and dropped, so the sync never answers its own echo.

Requests are QoS 0 and sent only while connected: a request spooled through an outage would reach the cloud
after its answer stopped mattering. An unanswered request (offline, or no answer in time) raises
:class:`CloudShadowUnavailableError`, and the sync resumes on the next connection. Requests are paced by
``maxOutboundSyncUpdatesPerSecond`` (a token bucket holding one second's worth).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgewise.errors import EdgewiseError
from edgewise.protocol.shadow.document import JsonObject, encode_document, topic_prefix
from edgewise.runtime.cloudlink.errors import CloudLinkError
from edgewise.runtime.shadow.settings import ShadowKey
from edgewise.runtime.shadow.sync_decision import SideView, sections

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

#: The answer topics of a shadow the sync subscribes to (``update/delta`` it does not need).
ANSWERS = (
    "get/accepted",
    "get/rejected",
    "update/accepted",
    "update/rejected",
    "update/documents",
    "delete/accepted",
    "delete/rejected",
)
#: Told about a change another client made to a watched shadow.
CloudChange = Callable[[ShadowKey, SideView], None]


class CloudShadowUnavailableError(EdgewiseError):
    """A sync request got no answer: the cloud link is down, or the cloud did not answer in time."""

    def __init__(self, key: ShadowKey, operation: str, reason: str) -> None:
        label = key.shadow or "classic"
        super().__init__(f"The cloud did not answer {operation} of {key.thing}'s {label} shadow: {reason}")
        self.key = key
        self.operation = operation


class CloudShadowRejectedError(EdgewiseError):
    """The cloud refused a sync request; ``code`` is AWS IoT's status (404, 409, 413, ...)."""

    def __init__(self, key: ShadowKey, operation: str, code: int, message: str) -> None:
        label = key.shadow or "classic"
        super().__init__(f"The cloud refused {operation} of {key.thing}'s {label} shadow ({code}): {message}")
        self.key = key
        self.operation = operation
        self.code = code


class _RateLimit:
    """A token bucket: ``rate`` requests a second, bursts of up to one second's worth."""

    def __init__(self, rate: int) -> None:
        self._rate = float(rate)
        self._tokens = float(rate)
        self._last: float | None = None

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._last is not None:
            self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self._rate)
            self._last = loop.time()
            self._tokens = 1.0
        self._tokens -= 1


def _parse(payload: bytes) -> JsonObject | None:
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _version(document: JsonObject) -> int | None:
    version = document.get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) and version >= 0 else None


class CloudShadows:
    """Requests on the cloud's shadows through ``cloud``; :meth:`watch` before use, :meth:`close` after. Must be
    used from the event loop."""

    def __init__(self, cloud: CloudLink, *, rate: int, on_change: CloudChange, timeout: float = 10.0) -> None:
        self._cloud = cloud
        self._on_change = on_change
        self._timeout = timeout
        self._limit = _RateLimit(rate)
        self._token_prefix = f"edgewise-sync-{secrets.token_hex(4)}-"
        self._tokens = itertools.count(1)
        self._pending: dict[str, asyncio.Future[tuple[str, JsonObject]]] = {}
        self._topics: dict[str, tuple[ShadowKey, str]] = {}
        self._subscriptions: list[CloudSubscription] = []

    async def watch(self, keys: tuple[ShadowKey, ...]) -> set[ShadowKey]:
        """Subscribe to the answer topics of ``keys`` (waiting for the broker while connected); the keys whose
        subscriptions the broker refused (logged), which cannot be synced."""
        topics: list[tuple[str, ShadowKey]] = []
        for key in keys:
            prefix = topic_prefix(key.thing, key.shadow)
            for answer in ANSWERS:
                topic = f"{prefix}/{answer}"
                self._topics[topic] = (key, answer)
                topics.append((topic, key))
        subscribed = await asyncio.gather(
            *(self._cloud.subscribe(topic, self._receive, qos=1) for topic, _ in topics),
            return_exceptions=True,
        )
        refused: set[ShadowKey] = set()
        for (_, key), result in zip(topics, subscribed, strict=True):
            if isinstance(result, CloudLinkError):
                logger.error(
                    "The %s shadow of %s cannot be synced: %s", key.shadow or "classic", key.thing, result
                )
                refused.add(key)
            elif isinstance(result, BaseException):
                raise result
            else:
                self._subscriptions.append(result)
        return refused

    def close(self) -> None:
        """Unsubscribe and fail the requests still waiting."""
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        self._topics.clear()
        self.fail_pending("the sync stopped")

    def fail_pending(self, reason: str) -> None:
        """Make every request waiting for an answer give up (the link went down)."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(reason))

    # -- requests ---------------------------------------------------------------------------------------

    async def get(self, key: ShadowKey) -> SideView:
        """The cloud's shadow (``state`` None when it does not exist)."""
        outcome, document = await self._request(key, "get", {})
        if outcome == "rejected":
            code = document.get("code")
            if code == 404:
                return SideView(0, None)
            raise CloudShadowRejectedError(key, "get", code if isinstance(code, int) else 500, str(document))
        state, version = document.get("state"), _version(document)
        if not isinstance(state, dict) or version is None:
            raise CloudShadowRejectedError(key, "get", 500, "the answer has no state or version")
        return SideView(version, sections(state))

    async def update(self, key: ShadowKey, patch: JsonObject, *, version: int | None) -> int:
        """Apply an update request with ``patch`` as its state (at ``version`` when given); the new version.

        Raises:
            CloudShadowRejectedError: the cloud refused it (409: the shadow is not at ``version``).
        """
        request: JsonObject = {"state": patch}
        if version is not None:
            request["version"] = version
        outcome, document = await self._request(key, "update", request)
        new_version = _version(document)
        if outcome == "rejected" or new_version is None:
            code = document.get("code")
            raise CloudShadowRejectedError(
                key, "update", code if isinstance(code, int) else 500, str(document.get("message", document))
            )
        return new_version

    async def delete(self, key: ShadowKey) -> None:
        """Delete the cloud's shadow (one that is already gone counts as deleted)."""
        outcome, document = await self._request(key, "delete", {})
        code = document.get("code")
        if outcome == "rejected" and code != 404:
            raise CloudShadowRejectedError(
                key, "delete", code if isinstance(code, int) else 500, str(document.get("message", document))
            )

    async def _request(self, key: ShadowKey, operation: str, body: JsonObject) -> tuple[str, JsonObject]:
        await self._limit.wait()
        if not self._cloud.connected:
            raise CloudShadowUnavailableError(key, operation, "the cloud link is down")
        token = f"{self._token_prefix}{next(self._tokens)}"
        future: asyncio.Future[tuple[str, JsonObject]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            topic = f"{topic_prefix(key.thing, key.shadow)}/{operation}"
            try:
                await self._cloud.publish(topic, encode_document({**body, "clientToken": token}), qos=0)
            except CloudLinkError as exc:
                raise CloudShadowUnavailableError(key, operation, str(exc)) from None
            try:
                async with asyncio.timeout(self._timeout):
                    return await future
            except TimeoutError:
                raise CloudShadowUnavailableError(
                    key, operation, f"no answer in {self._timeout:g} s"
                ) from None
            except ConnectionError as exc:
                raise CloudShadowUnavailableError(key, operation, str(exc)) from None
        finally:
            del self._pending[token]

    # -- answers and changes ------------------------------------------------------------------------------

    def _receive(self, message: CloudMessage) -> None:
        found = self._topics.get(message.topic)
        if found is None:
            return
        key, answer = found
        document = _parse(message.payload)
        if document is None:
            logger.warning("Ignoring a shadow message on %s that is not a JSON object", message.topic)
            return
        token = document.get("clientToken")
        if isinstance(token, str) and token.startswith(self._token_prefix):
            future = self._pending.get(token)
            if future is not None and not future.done() and not answer.endswith("/documents"):
                future.set_result((answer.rsplit("/", 1)[1], document))
            return
        change = self._change_of(answer, document)
        if change is not None:
            try:
                self._on_change(key, change)
            except Exception:
                logger.exception("The shadow sync failed to take a change of %s", message.topic)

    @staticmethod
    def _change_of(answer: str, document: JsonObject) -> SideView | None:
        """What another client's write made of the shadow, from ``update/documents`` or ``delete/accepted``."""
        if answer == "update/documents":
            current = document.get("current")
            if not isinstance(current, dict):
                return None
            state, version = current.get("state"), _version(current)
            if not isinstance(state, dict) or version is None:
                return None
            return SideView(version, sections(state))
        if answer == "delete/accepted":
            version = _version(document)
            return None if version is None else SideView(version, None)
        return None
