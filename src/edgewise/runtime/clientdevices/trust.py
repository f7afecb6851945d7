"""The client-device trust list: which things may connect to this core, with which certificates, signed by which
CA. It comes from the cloud (:mod:`edgewise.protocol.client_devices`, the ``get`` conversation), asked for at
start, whenever the cloud says it ``changed``, and every :data:`REFRESH_INTERVAL` seconds; it is cached in the Auth
component's work folder (``0600``) so that client devices keep connecting while the core is offline, for
``clientDeviceTrustDurationMinutes`` after the last list the cloud gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from edgewise.errors import EdgewiseError
from edgewise.protocol import client_devices as protocol
from edgewise.protocol.client_devices import ClientDeviceList
from edgewise.runtime.files import write_atomically

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

REFRESH_INTERVAL: Final = 300.0
RETRY_INTERVAL: Final = 15.0
ANSWER_TIMEOUT: Final = 30.0
CACHE_FILE: Final = "trust-list.json"


@dataclass(frozen=True)
class TrustList:
    """A list the cloud gave, and when it arrived (seconds since the epoch)."""

    devices: ClientDeviceList
    fetched_at: float

    def thing_of(self, sha256: str) -> str | None:
        """The client device whose ACTIVE certificate has DER SHA-256 ``sha256`` (lowercase hex), or None."""
        for device in self.devices.client_devices:
            if any(certificate.sha256 == sha256 for certificate in device.certificates):
                return device.thing_name
        return None


class TrustStore:
    """The current trust list, kept in ``path``; listeners hear of each new one (in the event loop)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._list: TrustList | None = None
        self._listeners: list[Callable[[], Awaitable[None]]] = []

    def load(self) -> None:
        """Read the cached list, if there is a usable one. Blocks (file I/O)."""
        try:
            cached = json.loads(self.path.read_text("utf-8"))
            devices = protocol.parse_client_device_list(cached["payload"].encode("utf-8"))
            self._list = TrustList(devices, float(cached["fetchedAt"]))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, EdgewiseError) as error:
            logger.warning("Ignoring the cached client-device trust list %s: %s", self.path, error)

    def current(self, duration: float) -> TrustList | None:
        """The list if it arrived less than ``duration`` seconds ago, else None (nothing is trusted)."""
        trusted = self._list
        if trusted is None or self._clock() - trusted.fetched_at > duration:
            return None
        return trusted

    async def accept(self, devices: ClientDeviceList) -> None:
        """Keep ``devices`` as the current list, tell the listeners (awaiting each), then cache it."""
        self._list = TrustList(devices, self._clock())
        # No await between taking the list and calling the first listener: what it locks at once (the broker's
        # logins) is locked before anyone can see the new list.
        for listener in list(self._listeners):
            await listener()
        await asyncio.to_thread(self._cache, self._list)

    def _cache(self, trusted: TrustList) -> None:
        payload = protocol.build_client_device_list("cache", trusted.devices).decode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = json.dumps({"fetchedAt": trusted.fetched_at, "payload": payload})
        write_atomically(self.path, body.encode("utf-8"), mode=0o600)

    def add_listener(self, listener: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        """Await ``listener()`` after each new list; returns what removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None


class TrustListFetcher:
    """Asks the cloud for the trust list and hands each answer to a :class:`TrustStore`. Must be used from the
    event loop."""

    def __init__(
        self,
        cloud: CloudLink,
        core: str,
        store: TrustStore,
        *,
        refresh_interval: float = REFRESH_INTERVAL,
        retry_interval: float = RETRY_INTERVAL,
        timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self._cloud = cloud
        self._core = core
        self._store = store
        self._refresh = refresh_interval
        self._retry = retry_interval
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[ClientDeviceList | str]] = {}
        self._subscriptions: list[CloudSubscription] = []
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Fetch now, then again when the cloud says the list changed and every refresh interval."""
        try:
            for topic, callback in (
                (protocol.get_reply_topic(self._core, protocol.ACCEPTED), self._answered),
                (protocol.get_reply_topic(self._core, protocol.REJECTED), self._answered),
                (protocol.changed_topic(self._core), self._changed),
            ):
                self._subscriptions.append(await self._cloud.subscribe(topic, callback, qos=1))
            while True:
                self._wake.clear()
                delay = self._refresh if await self._fetch() else self._retry
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        finally:
            for subscription in self._subscriptions:
                subscription.unsubscribe()
            self._subscriptions.clear()

    async def _fetch(self) -> bool:
        from edgewise.runtime.cloudlink import CloudLinkError, MessageProperties

        token = uuid.uuid4().hex
        future: asyncio.Future[ClientDeviceList | str] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        try:
            await self._cloud.wait_connected()
            await self._cloud.publish(
                protocol.get_topic(self._core),
                protocol.build_get_request(token),
                qos=1,
                properties=MessageProperties(message_expiry_interval=max(1, int(self._timeout))),
            )
            async with asyncio.timeout(self._timeout):
                answer = await future
        except TimeoutError:
            logger.warning("The cloud did not send the client-device trust list within %.0f s", self._timeout)
            return False
        except CloudLinkError as error:
            logger.warning("Cannot ask the cloud for the client-device trust list: %s", error)
            return False
        finally:
            self._waiting.pop(token, None)
        if isinstance(answer, str):
            logger.warning("The cloud refused the client-device trust list request: %s", answer)
            return False
        await self._store.accept(answer)
        logger.info(
            "Client-device trust list: %d devices, %d CA certificates",
            len(answer.client_devices),
            len(answer.ca_certificates),
        )
        return True

    def _answered(self, message: CloudMessage) -> None:
        token = protocol.client_token_of(message.payload)
        future = self._waiting.get(token) if token is not None else None
        if future is None or future.done():
            return
        try:
            if message.topic.endswith(protocol.ACCEPTED):
                future.set_result(protocol.parse_client_device_list(message.payload))
            else:
                rejection = protocol.parse_rejection(message.payload)
                future.set_result(f"{rejection.code}: {rejection.message}")
        except protocol.ClientDeviceProtocolError as error:
            future.set_result(f"the answer does not parse: {error}")

    def _changed(self, message: CloudMessage) -> None:
        self._wake.set()


async def publish_core_ca(
    cloud: CloudLink, core: str, ca_certificates: tuple[str, ...], *, timeout: float
) -> None:
    """Send the core's local CA to the cloud (the ``ca/update`` conversation), for discovery to hand out.

    Raises:
        ClientDeviceProtocolError: the cloud refused it.
        TimeoutError: the cloud did not answer within ``timeout`` seconds.
        CloudLinkError: the link did not take the request.
    """
    token = uuid.uuid4().hex
    answer: asyncio.Future[CloudMessage] = asyncio.get_running_loop().create_future()

    def answered(message: CloudMessage) -> None:
        if protocol.client_token_of(message.payload) == token and not answer.done():
            answer.set_result(message)

    subscriptions = [
        await cloud.subscribe(protocol.ca_reply_topic(core, outcome), answered, qos=1)
        for outcome in (protocol.ACCEPTED, protocol.REJECTED)
    ]
    try:
        await cloud.wait_connected()
        update = protocol.CaUpdate(token, ca_certificates)
        await cloud.publish(protocol.ca_topic(core), protocol.build_ca_update(update), qos=1)
        async with asyncio.timeout(timeout):
            message = await answer
    finally:
        for subscription in subscriptions:
            subscription.unsubscribe()
    if message.topic.endswith(protocol.REJECTED):
        rejection = protocol.parse_rejection(message.payload)
        raise protocol.ClientDeviceProtocolError("caCertificates", f"{rejection.code}: {rejection.message}")
    protocol.parse_ca_accepted(message.payload)
