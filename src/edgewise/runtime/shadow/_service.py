"""The local shadow service: get, update, delete and list shadows, and tell the local bus what changed.

Every operation runs as one SQLite transaction on a dedicated thread, so operations on a shadow never
interleave and the event loop never waits on the disk. After each accepted operation the standard response
topics of AWS IoT are published on the local pub/sub bus, as the Greengrass shadow manager does:
``P/get/accepted``, ``P/update/accepted``, ``P/update/delta`` (when a delta exists), ``P/update/documents``,
``P/delete/accepted``, and ``P/<op>/rejected`` with the AWS error document when a request for a valid shadow is
refused. Messages are JSON documents sent as binary payloads, like Greengrass (subscribers read
``binaryMessage``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from edgewise.protocol.shadow.document import (
    JsonObject,
    Shadow,
    apply_update,
    client_token_of,
    delete_document,
    encode_document,
    error_document,
    get_document,
    parse_update,
    topic_prefix,
    validate_shadow_name,
    validate_thing_name,
)

if TYPE_CHECKING:
    from edgewise.runtime.shadow._store import ShadowStore
from edgewise.protocol.shadow.errors import InvalidShadowRequestError, ShadowError, ShadowNotFoundError

logger = logging.getLogger(__name__)

#: Greengrass ``shadowDocumentSizeLimitBytes``: default and the most it may be raised to.
DEFAULT_SIZE_LIMIT = 8192
MAX_SIZE_LIMIT = 30720
#: ListNamedShadowsForThing page sizes (Greengrass defaults).
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100

#: Publishes one message on the local bus: topic, JSON document as bytes.
Publish = Callable[[str, bytes], object]
#: Told (thing, shadow name) after each accepted local update or delete; the cloud sync listens.
ChangeListener = Callable[[str, str], None]
T = TypeVar("T")


@dataclass(frozen=True)
class NamedShadowPage:
    """One page of a thing's named shadows; ``next_token`` is None on the last page."""

    names: list[str]
    next_token: str | None
    timestamp: float


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        name = base64.urlsafe_b64decode(token.encode("ascii")).decode()
        if name:
            return validate_shadow_name(name)
    except (ValueError, binascii.Error, ShadowError):
        pass
    raise InvalidShadowRequestError(f"nextToken: {token[:100]!r} is not a token this service returned")


class ShadowService:
    """Local shadows on one database; :meth:`open` before use, :meth:`close` after."""

    def __init__(
        self,
        database: Path,
        *,
        publish: Publish | None = None,
        size_limit: Callable[[], int] = lambda: DEFAULT_SIZE_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._publish = publish
        self._size_limit = size_limit
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._store: ShadowStore | None = None
        self._listeners: list[ChangeListener] = []

    async def open(self) -> None:
        """Start the service's own thread; the database opens there on first use, so a runtime whose
        components use no shadows never loads SQLite."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-store")

    async def close(self) -> None:
        """Close the database once operations in progress are done."""
        if self._executor is None:
            return
        store, self._store = self._store, None
        if store is not None:
            await self._run(store.close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, work: Callable[[], T]) -> T:
        if self._executor is None:
            msg = "The shadow service is not open"
            raise RuntimeError(msg)
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _opened(self) -> ShadowStore:
        """The store, opened (creating the database) on first use. Runs on the service's thread."""
        if self._store is None:
            from edgewise.runtime.shadow._store import ShadowStore

            self._store = ShadowStore.open(self._database)
            logger.info("Local shadows stored in %s", self._database)
        return self._store

    def _now(self) -> int:
        return int(self._clock())

    def add_change_listener(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(thing, shadow)`` on the event loop after each accepted update or delete made through
        this service (not after :meth:`run_in_store` work); returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _changed(self, thing_name: str, shadow_name: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(thing_name, shadow_name)
            except Exception:
                logger.exception("A shadow change listener failed")

    async def run_in_store(self, work: Callable[[ShadowStore], T]) -> T:
        """Run ``work(store)`` on the service's thread, between operations (the cloud sync's transactions)."""
        return await self._run(lambda: work(self._opened()))

    def announce(self, topic: str, document: JsonObject) -> None:
        """Publish a shadow document on the local bus, as an operation does (a failure is logged)."""
        self._announce(topic, document)

    def _announce(self, topic: str, document: JsonObject) -> None:
        if self._publish is None:
            return
        try:
            self._publish(topic, encode_document(document))
        except Exception:
            logger.exception("Could not publish the shadow document on %s", topic)

    def _reject(self, prefix: str, operation: str, error: ShadowError, client_token: str | None) -> None:
        document = error_document(error.code, error.message, now=self._now(), client_token=client_token)
        self._announce(f"{prefix}/{operation}/rejected", document)

    # -- operations ---------------------------------------------------------------------------------

    async def get_shadow(self, thing_name: str, shadow_name: str) -> JsonObject:
        """The shadow document with its delta (``/get/accepted``).

        Raises:
            InvalidShadowRequestError: a name is invalid.
            ShadowNotFoundError: the shadow does not exist.
        """
        thing_name, shadow_name = validate_thing_name(thing_name), validate_shadow_name(shadow_name)
        prefix = topic_prefix(thing_name, shadow_name)

        def work() -> JsonObject:
            stored = self._opened().read(thing_name, shadow_name)
            if stored is None or stored.deleted:
                raise ShadowNotFoundError(thing_name, shadow_name)
            return get_document(stored.shadow, now=self._now())

        try:
            document = await self._run(work)
        except ShadowError as exc:
            self._reject(prefix, "get", exc, None)
            raise
        self._announce(f"{prefix}/get/accepted", document)
        return document

    async def update_shadow(self, thing_name: str, shadow_name: str, payload: bytes) -> JsonObject:
        """Merge an update request into the shadow, creating it if needed; returns ``/update/accepted``.

        Raises:
            InvalidShadowRequestError: a name, the JSON or its shape is invalid.
            ShadowVersionConflictError: the request's version is not the shadow's.
            PayloadTooLargeError: the request or the resulting state is over the size limit.
        """
        thing_name, shadow_name = validate_thing_name(thing_name), validate_shadow_name(shadow_name)
        prefix = topic_prefix(thing_name, shadow_name)
        limit = self._size_limit()

        def work() -> tuple[JsonObject, JsonObject, JsonObject | None]:
            request = parse_update(payload, max_bytes=2 * limit)
            store = self._opened()
            with store.transaction():
                stored = store.read(thing_name, shadow_name)
                previous: Shadow | None = None
                version = 0
                if stored is not None:
                    version = stored.shadow.version
                    previous = None if stored.deleted else stored.shadow
                now = self._clock()
                outcome = apply_update(
                    previous, request, current_version=version, now=int(now), max_state_bytes=limit
                )
                store.write(thing_name, shadow_name, outcome.shadow, updated_at=now)
            return outcome.accepted, outcome.documents, outcome.delta

        try:
            accepted, documents, delta = await self._run(work)
        except ShadowError as exc:
            self._reject(prefix, "update", exc, client_token_of(payload))
            raise
        self._announce(f"{prefix}/update/accepted", accepted)
        if delta is not None:
            self._announce(f"{prefix}/update/delta", delta)
        self._announce(f"{prefix}/update/documents", documents)
        self._changed(thing_name, shadow_name)
        return accepted

    async def delete_shadow(self, thing_name: str, shadow_name: str) -> JsonObject:
        """Delete the shadow; returns ``/delete/accepted`` (the deleted shadow's version).

        Raises:
            InvalidShadowRequestError: a name is invalid.
            ShadowNotFoundError: the shadow does not exist.
        """
        thing_name, shadow_name = validate_thing_name(thing_name), validate_shadow_name(shadow_name)
        prefix = topic_prefix(thing_name, shadow_name)

        def work() -> JsonObject:
            store = self._opened()
            with store.transaction():
                stored = store.read(thing_name, shadow_name)
                if stored is None or stored.deleted:
                    raise ShadowNotFoundError(thing_name, shadow_name)
                now = self._clock()
                store.mark_deleted(thing_name, shadow_name, updated_at=now)
            return delete_document(stored.shadow.version, now=int(now))

        try:
            document = await self._run(work)
        except ShadowError as exc:
            self._reject(prefix, "delete", exc, None)
            raise
        self._announce(f"{prefix}/delete/accepted", document)
        self._changed(thing_name, shadow_name)
        return document

    async def list_named_shadows(
        self, thing_name: str, *, next_token: str | None = None, page_size: int | None = None
    ) -> NamedShadowPage:
        """One page of the thing's named shadows, sorted by name (a thing without any gives an empty page).

        Raises:
            InvalidShadowRequestError: the thing name, the token or the page size is invalid.
        """
        thing_name = validate_thing_name(thing_name)
        if page_size is None:
            page_size = DEFAULT_PAGE_SIZE
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= MAX_PAGE_SIZE
        ):
            raise InvalidShadowRequestError(
                f"pageSize: expected an integer from 1 to {MAX_PAGE_SIZE}, got {page_size!r}"
            )
        after = _decode_token(next_token) if next_token else ""

        def work() -> list[str]:
            return self._opened().named_shadows(thing_name, after=after, limit=page_size + 1)

        names = await self._run(work)
        more = len(names) > page_size
        names = names[:page_size]
        return NamedShadowPage(names, _encode_token(names[-1]) if more else None, self._clock())
