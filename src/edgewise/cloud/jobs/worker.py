"""The MQTT side of jobs: answers AWS IoT Jobs requests on ``$aws/things/+/jobs/#`` and sends the
notifications that committed execution changes call for.

The worker connects to the broker through a :class:`WorkerLink` (subscribed without receiving its own
publishes, MQTT 5 no-local) and ignores reply and notification topics, so no worker answers another's
replies. With several cloud processes it subscribes to the request topics only
(:data:`edgewise.protocol.jobs.REQUEST_FILTERS`), so that none receives the replies the others publish; a topic
that names no operation then goes unanswered instead of being answered ``InvalidTopic``. The thing is the one in
the topic: the broker lets a device publish only under its own ``$aws/things/<thing>/``. The store work runs in a
thread. Replies go to the request topic plus ``/accepted`` or ``/rejected``, with the request's ``clientToken``
echoed. Each thing may send ``burst`` requests at once and ``requests_per_second`` after that; beyond, requests
are answered ``RequestThrottled``.

One thing's requests are answered one at a time, in the order they arrived (MQTT delivers one client's messages
in order): a device that reports IN_PROGRESS then SUCCEEDED, or reports and then asks what is next, must see
the first request applied before the second is read, and no update may overwrite another read at the same
version. Different things' requests are answered together (:mod:`edgewise.cloud.batches`): those that arrive
while a batch is in the store wait for the next one, and a batch of up to :data:`BATCH_MAX` requests (one per
thing at most) is one transaction, since a fleet deployment has every device ask at once and a transaction each
cost more than the rest of the work.
A rejected request changes nothing, so it shares the transaction; should the transaction fail, its requests are
answered one by one, so one bad row never costs the others their answers. With several cloud processes, each
answers the things its ``partition`` owns (:mod:`edgewise.cloud.partition`), so a thing's requests still go
through one process, in order.

Notifications: the worker listens to :class:`JobEvents` of its session factory and, for every batch of
committed execution changes (from the API, the engine or its own answers), publishes what
:mod:`edgewise.cloud.jobs.notifications` plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.batches import RequestBatches, outcome_of
from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.db import utcnow
from edgewise.cloud.jobs import executions, notifications, protocol
from edgewise.cloud.jobs.engine import Clock
from edgewise.cloud.jobs.events import JobChange, JobEvents
from edgewise.cloud.jobs.secrets import SecretSealer
from edgewise.cloud.partition import Partition
from edgewise.cloud.workerlink import PacketTooLargeError, WorkerLink
from edgewise.protocol import jobs
from edgewise.protocol.jobs import JobsRejection, Operation, Request

logger = logging.getLogger(__name__)

_CLIENT_ID = "edgewise-jobs"
_MAX_BUCKETS = 10_000
#: The most requests one transaction answers.
BATCH_MAX = 200

#: What a request of a batch came to: its accepted reply, or the rejection or failure to answer with.
_Outcome = dict[str, Any] | Exception


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ThingThrottle:
    """A token bucket per thing: ``burst`` requests at once, refilled at ``rate`` a second."""

    def __init__(self, rate: float, burst: int, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = burst
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, thing_name: str) -> bool:
        """Take a token for ``thing_name`` if it has one."""
        now = self._monotonic()
        bucket = self._buckets.get(thing_name)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[thing_name] = _Bucket(float(self._burst), now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_full(self, now: float) -> None:
        for name, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self._rate >= self._burst:
                del self._buckets[name]


class JobsWorker:
    """Serves the jobs MQTT protocol and sends notifications until closed."""

    #: What the cloud's logs call this worker.
    name = "jobs"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connection: BrokerConnection,
        *,
        sealer: SecretSealer,
        clock: Clock = utcnow,
        requests_per_second: float = 20.0,
        burst: int = 40,
        partition: Partition | None = None,
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._clock = clock
        self._throttle = ThingThrottle(requests_per_second, burst)
        self._changes: list[JobChange] = []
        self._batches = RequestBatches[tuple[Operation, Request], dict[str, Any]](
            self._handle, most=BATCH_MAX, name="jobs"
        )
        #: Per thing with requests in flight: the lock that orders them, and how many hold or wait for it.
        self._queues: dict[str, tuple[asyncio.Lock, int]] = {}
        self._notifying: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            # Alone, every jobs topic (a malformed one is answered InvalidTopic); beside other processes, request
            # topics only, or each would receive every reply the others publish.
            filters=(jobs.EVERY_THING_FILTER,) if partition is None else jobs.REQUEST_FILTERS,
            on_message=self._answer,
            partition=partition,
        )

    async def start(self) -> None:
        """Connect, subscribe to the request topics and start listening for execution changes.

        Raises:
            OSError: the broker cannot be reached or its TLS certificate does not verify.
            ConnectionError: the broker refused or did not answer within 10 s.
        """
        await self._link.start()
        self._unsubscribe = JobEvents.for_sessions(self._sessions).subscribe(
            self._on_changes, loop=asyncio.get_running_loop()
        )

    async def close(self) -> None:
        """Stop listening and disconnect; requests being answered are abandoned."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._notifying is not None:
            self._notifying.cancel()
            await asyncio.gather(self._notifying, return_exceptions=True)
        await self._batches.close()
        await self._link.close()

    def _publish(self, topic: str, body: dict[str, Any]) -> None:
        try:
            self._link.publish(topic, json.dumps(body, separators=(",", ":")))
        except PacketTooLargeError as exc:
            # Only a pending list of tens of thousands of jobs gets there (documents are at most 32 KiB).
            logger.error("jobs-message-dropped: %s", exc)

    async def _answer(self, topic: str, payload: bytes) -> None:
        token = jobs.client_token_of(payload)
        try:
            operation = jobs.parse_request_topic(topic)
            if operation is None:
                return
            if not self._throttle.allow(operation.thing_name):
                raise JobsRejection(
                    "RequestThrottled", f"Thing {operation.thing_name!r} sends requests too fast; slow down"
                )
            request = jobs.parse_request(operation.kind, payload)
            async with self._in_order(operation.thing_name):
                reply = await self._batches.answered((operation, request))
                self._publish(jobs.reply_topic(topic, "accepted"), reply)
            return
        except JobsRejection as exc:
            reply = exc.payload(client_token=token, timestamp=protocol.timestamp(self._clock()))
            logger.info("jobs-request-rejected topic=%s code=%s: %s", topic, exc.code, exc)
        except Exception:
            logger.exception("jobs-request-failed topic=%s", topic)
            rejection = JobsRejection("InternalError", "The request failed; see the cloud log")
            reply = rejection.payload(client_token=token, timestamp=protocol.timestamp(self._clock()))
        self._publish(jobs.reply_topic(topic, "rejected"), reply)

    @contextlib.asynccontextmanager
    async def _in_order(self, thing: str) -> AsyncIterator[None]:
        """Hold ``thing``'s turn: requests enter in the order they call this (asyncio's lock is first come,
        first served, and each message's task calls it before its first await)."""
        lock, users = self._queues.get(thing, (asyncio.Lock(), 0))
        self._queues[thing] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._queues[thing]
            if users == 1:
                del self._queues[thing]
            else:
                self._queues[thing] = (lock, users - 1)

    def _handle(self, batch: Sequence[tuple[Operation, Request]]) -> list[_Outcome]:
        """What each request of ``batch`` comes to, answered in one transaction, or one by one should that
        fail. Blocks."""
        now = self._clock()
        try:
            with self._sessions() as session:
                outcomes: list[_Outcome] = []
                # The requests are for different things: none reads what another changed, and the changes go
                # out together at the commit (one statement for many rows) instead of one flush per request.
                with session.no_autoflush:
                    read = executions.ReadAhead.read(session, (operation for operation, _ in batch))
                    for operation, request in batch:
                        try:
                            outcomes.append(self._apply(session, operation, request, now, read))
                        except JobsRejection as exc:
                            outcomes.append(exc)
                session.commit()
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            logger.warning("jobs-batch-retried requests=%d: answering them one by one", len(batch))
            return [outcome for asked in batch for outcome in self._handle([asked])]
        return [
            outcome
            if isinstance(outcome, Exception)
            else outcome_of(partial(self._accepted, outcome, *asked, now))
            for outcome, asked in zip(outcomes, batch, strict=True)
        ]

    @staticmethod
    def _apply(
        session: Session,
        operation: Operation,
        request: Request,
        now: datetime.datetime,
        read: executions.ReadAhead,
    ) -> dict[str, Any]:
        """The body of the accepted reply to ``request``, its changes left in ``session``."""
        thing, namespace = operation.thing_name, operation.namespace_id
        if operation.kind == "get_pending":
            return executions.get_pending(session, thing, namespace)
        if operation.kind == "start_next":
            return executions.start_next(session, thing, namespace, request, now=now, read=read)
        assert operation.job_id is not None
        if operation.kind == "describe":
            return executions.describe(session, thing, namespace, operation.job_id, request)
        return executions.update(session, thing, namespace, operation.job_id, request, now=now, read=read)

    def _accepted(
        self, body: dict[str, Any], operation: Operation, request: Request, now: datetime.datetime
    ) -> dict[str, Any]:
        return jobs.accepted_payload(
            self._for_device(body, operation.job_id),
            timestamp=protocol.timestamp(now),
            client_token=request.client_token,
        )

    def _on_changes(self, changes: Sequence[JobChange]) -> None:
        self._changes.extend(changes)
        if self._notifying is None or self._notifying.done():
            self._notifying = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        while self._changes:
            batch, self._changes = self._changes, []
            try:
                messages = await asyncio.to_thread(self._plan, batch)
            except Exception:
                logger.exception("jobs-notifications-failed changes=%d", len(batch))
                continue
            for message in messages:
                self._publish(message.topic, message.payload)

    def _plan(self, changes: Sequence[JobChange]) -> list[notifications.Message]:
        with self._sessions() as session:
            messages = notifications.plan_from_store(session, changes, now=self._clock())
        return [replace(message, payload=self._for_device(message.payload, None)) for message in messages]

    def _for_device(self, body: dict[str, Any], job_id: str | None) -> dict[str, Any]:
        """``body`` with the secret values of its job document opened: the only message that carries them
        goes to the thing with an execution of the job, over its own connection. Blocks (CPU)."""
        return jobs.with_document(body, job_id, lambda document, of: self._sealer.open(document, job_id=of))
