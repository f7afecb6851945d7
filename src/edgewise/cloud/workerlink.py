"""The MQTT connection a cloud worker keeps to the broker (the managed broker's worker listener, or an external one).

A worker (fleet status, provisioning, jobs...) subscribes to device topics and answers or records what arrives.
paho's network thread hands each message to the event loop, where ``on_message`` runs as a task; the task set
is tracked so that :meth:`WorkerLink.close` can abandon what is still running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgewise.cloud.broker.connection import BrokerConnection

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], Awaitable[None]]
_CONNECT_TIMEOUT = 10.0
_KEEPALIVE = 30


class WorkerLink:
    """One worker's subscription to ``filters``; every message runs ``on_message(topic, payload)`` on the loop."""

    def __init__(
        self,
        connection: BrokerConnection,
        *,
        client_id: str,
        filters: Sequence[str],
        on_message: MessageHandler,
    ) -> None:
        self._connection = connection
        self._client_id = client_id
        self._filters = list(filters)
        self._on_message = on_message
        self._ready = threading.Event()
        self._failure: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._client = connection.new_client(client_id)
        self._client.on_connect = self._thread_connected
        self._client.on_subscribe = self._thread_subscribed
        self._client.on_message = self._thread_message

    async def start(self) -> None:
        """Connect and subscribe.

        Raises:
            OSError: the broker cannot be reached or its TLS certificate does not verify.
            ConnectionError: the broker refused the connection or a subscription, or did not answer in 10 s.
        """
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(
            self._client.connect, self._connection.host, self._connection.port, _KEEPALIVE
        )
        self._client.loop_start()
        if not await asyncio.to_thread(self._ready.wait, _CONNECT_TIMEOUT) or self._failure is not None:
            self._client.loop_stop()
            raise ConnectionError(
                f"{self._client_id} could not subscribe on {self._connection.url}: "
                f"{self._failure or f'no answer within {_CONNECT_TIMEOUT:.0f} s'}"
            )
        logger.info("worker-started client=%s broker=%s", self._client_id, self._connection.url)

    async def close(self) -> None:
        """Disconnect; messages still being handled are abandoned."""
        pending = list(self._pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a publish (paho sends it from its thread; safe to call from the loop)."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def _thread_connected(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self._failure = f"the broker refused the connection: {reason}"
            self._ready.set()
            return
        # No-local: a worker never receives what it publishes itself, so no reply reaches a request handler.
        client.subscribe(
            [(topic_filter, SubscribeOptions(qos=1, noLocal=True)) for topic_filter in self._filters]
        )

    def _thread_subscribed(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        failed = [reason for reason in reasons if reason.is_failure]
        if failed:
            self._failure = f"the broker refused a subscription: {failed[0]}"
        self._ready.set()

    def _thread_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._dispatch, message.topic, bytes(message.payload))

    def _dispatch(self, topic: str, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(topic, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _handle(self, topic: str, payload: bytes) -> None:
        try:
            await self._on_message(topic, payload)
        except Exception:
            logger.exception("worker-message-failed client=%s topic=%s", self._client_id, topic)
