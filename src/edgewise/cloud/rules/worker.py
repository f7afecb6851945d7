"""The rules worker: evaluates every enabled routing rule on the broker's messages and runs their actions.

Subscriptions: while at least one rule is enabled the worker subscribes to ``#``, plus ``<root>/#`` for each
reserved root (``$aws``...) a rule's ``FROM`` filter starts with, and matches each rule's filter itself. MQTT
brokers may deliver one copy per matching subscription; these roots never overlap, so each message arrives
once however the rules' filters overlap. With no enabled rule the worker holds no connection at all.

Rule changes: the worker re-reads the rules when the API tells it (:meth:`RulesWorker.wake`, called after every
successful write under ``/api/v1/rules``) and every ``poll_interval`` seconds otherwise (another process may
have changed them), comparing each rule's name and time of change. When the roots change it opens a new
connection, then closes the old one; messages that reach the old connection after the switch are dropped,
since the new one is already subscribed.

Messages wait in a bounded queue (``queue_size``): when it is full a message is dropped with a warning rather
than letting memory grow. ``consumers`` tasks take messages from it, so one slow HTTP action does not hold up the
rest; each message goes through every rule, and one failing rule or action never stops the others. The
counters (matched, actions failed, last error) are added to the store every ``flush_interval`` seconds and
when the worker closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.db import utcnow
from edgewise.cloud.rules import service
from edgewise.cloud.rules.actions import (
    ActionContext,
    PreparedAction,
    create_http_client,
    prepare_action,
    run_actions,
)
from edgewise.cloud.rules.evaluate import RuleMessage, evaluate
from edgewise.cloud.rules.models import Rule
from edgewise.cloud.rules.schemas import RuleAction
from edgewise.cloud.rules.sql import RuleQuery, parse_rule_sql
from edgewise.cloud.workerlink import WorkerLink
from edgewise.errors import EdgewiseError
from edgewise.protocol.telemetry import thing_of_device_topic

logger = logging.getLogger(__name__)

_CLIENT_ID_PREFIX: Final = "edgewise-rules-"


def publisher_of(topic: str) -> str | None:
    """Who published on ``topic``, as far as the broker's ACL tells: the thing a ``dt/<thing>/...`` or
    ``$aws/things/<thing>/...`` topic names, which the default device policy lets only that thing (whose client
    id is its name) publish on; None elsewhere. Mosquitto does not tell subscribers who published."""
    parts = topic.split("/", 3)
    if len(parts) == 4 and parts[0] == "$aws" and parts[1] == "things" and parts[2]:
        return parts[2]
    return thing_of_device_topic(topic)


@dataclass(frozen=True)
class LoadedRule:
    """An enabled rule, parsed and ready to run."""

    name: str
    query: RuleQuery
    actions: tuple[PreparedAction, ...]
    error_action: PreparedAction | None


@dataclass(frozen=True)
class RulesWorkerStatistics:
    """What the rules worker is doing: rules loaded, messages waiting, and messages dropped on a full queue."""

    rules: int
    queued: int
    dropped: int


@dataclass
class _Counts:
    matched: int = 0
    actions_failed: int = 0
    last_error: str | None = None
    last_error_at: datetime.datetime | None = None


def load_rule(rule: Rule) -> LoadedRule:
    """Parse a stored rule.

    Raises:
        EdgewiseError: its SQL or an action no longer parses (a rule stored by another version).
        ValueError: an action does not validate.
    """
    actions = tuple(prepare_action(RuleAction.model_validate(action)) for action in rule.actions)
    error_action = (
        prepare_action(RuleAction.model_validate(rule.error_action))
        if rule.error_action is not None
        else None
    )
    return LoadedRule(rule.name, parse_rule_sql(rule.sql), actions, error_action)


def subscription_roots(rules: list[LoadedRule]) -> tuple[str, ...]:
    """The filters that receive every message any of ``rules`` may match, each message once."""
    roots: set[str] = set()
    for rule in rules:
        first = rule.query.topic_filter.split("/", 1)[0]
        roots.add(f"{first}/#" if first.startswith("$") else "#")
    return tuple(sorted(roots))


class RulesWorker:
    """Runs the enabled rules on the broker's messages until closed."""

    #: What the cloud's logs call this worker.
    name = "rules"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connection: BrokerConnection,
        *,
        poll_interval: float = 2.0,
        flush_interval: float = 5.0,
        queue_size: int = 1000,
        consumers: int = 4,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if queue_size < 1 or consumers < 1:
            raise ValueError(f"queue_size ({queue_size}) and consumers ({consumers}) must be at least 1")
        self._sessions = sessions
        self._connection = connection
        self._poll_interval = poll_interval
        self._flush_interval = flush_interval
        self._consumers = consumers
        self._clock = clock
        self._queue: asyncio.Queue[RuleMessage] = asyncio.Queue(maxsize=queue_size)
        self._http = http or create_http_client()
        self._rules: list[LoadedRule] = []
        self._version: object = None
        self._roots: tuple[str, ...] = ()
        self._link: WorkerLink | None = None
        self._generation = 0
        self._counts: dict[str, _Counts] = {}
        self._dropped = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def statistics(self) -> RulesWorkerStatistics:
        """The worker's current figures."""
        return RulesWorkerStatistics(
            rules=len(self._rules), queued=self._queue.qsize(), dropped=self._dropped
        )

    @property
    def rules(self) -> tuple[LoadedRule, ...]:
        """The rules the worker runs now."""
        return tuple(self._rules)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The filters the worker is subscribed to now."""
        return self._roots

    async def start(self) -> None:
        """Load the enabled rules and subscribe for them.

        Raises:
            OSError: the broker cannot be reached.
            ConnectionError: the broker refused or did not answer.
        """
        await self._reload()
        self._tasks = [
            asyncio.create_task(self._watch_rules(), name="rules-watch"),
            asyncio.create_task(self._flush_periodically(), name="rules-counters"),
            *(
                asyncio.create_task(self._consume(), name=f"rules-consumer-{index}")
                for index in range(self._consumers)
            ),
        ]

    async def close(self) -> None:
        """Stop taking messages, disconnect, and store the counters."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        await self._flush()
        await self._http.aclose()

    def wake(self) -> None:
        """Re-read the rules now (they changed). Must be called from the event loop thread."""
        self._wake.set()

    async def wait_idle(self) -> None:
        """Return once every queued message has been handled (for tests and shutdown)."""
        await self._queue.join()

    async def _watch_rules(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                await self._reload()
            except Exception:
                logger.exception("rules-reload-failed")

    async def _reload(self) -> None:
        version = await asyncio.to_thread(self._read_version)
        if version == self._version:
            return
        rules = await asyncio.to_thread(self._load)
        roots = subscription_roots(rules)
        if roots != self._roots:
            await self._resubscribe(roots)
        self._rules = rules
        self._version = version
        logger.info("rules-loaded count=%d subscriptions=%s", len(rules), ",".join(roots) or "none")

    def _read_version(self) -> object:
        with self._sessions() as session:
            return service.rules_version(session)

    def _load(self) -> list[LoadedRule]:
        """The enabled rules, parsed; one that no longer parses is skipped with its error recorded. Blocks."""
        loaded: list[LoadedRule] = []
        with self._sessions() as session:
            for rule in service.enabled_rules(session):
                try:
                    loaded.append(load_rule(rule))
                except (EdgewiseError, ValueError) as exc:
                    logger.error("rule-not-loaded rule=%s: %s", rule.name, exc)
                    self._count(rule.name).last_error = f"The rule cannot be loaded: {exc}"
        return loaded

    async def _resubscribe(self, roots: tuple[str, ...]) -> None:
        old = self._link
        link: WorkerLink | None = None
        self._generation += 1
        generation = self._generation
        if roots:

            async def on_message(topic: str, payload: bytes) -> None:
                self._enqueue(generation, topic, payload)

            link = WorkerLink(
                self._connection,
                client_id=f"{_CLIENT_ID_PREFIX}{uuid.uuid4().hex[:12]}",
                filters=roots,
                on_message=on_message,
            )
            try:
                await link.start()
            except BaseException:
                self._generation -= 1
                await link.close()
                raise
        self._link = link
        self._roots = roots
        if old is not None:
            await old.close()

    def _enqueue(self, generation: int, topic: str, payload: bytes) -> None:
        if generation != self._generation:
            return
        message = RuleMessage(
            topic=topic,
            payload=payload,
            client_id=publisher_of(topic),
            timestamp_ms=int(self._clock() * 1000),
        )
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                logger.warning(
                    "rules-queue-full dropped=%d size=%d: messages are arriving faster than the rules' actions"
                    " finish",
                    self._dropped,
                    self._queue.maxsize,
                )

    async def _consume(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._handle(message)
            except Exception:
                logger.exception("rules-message-failed topic=%s", message.topic)
            finally:
                self._queue.task_done()

    async def _handle(self, message: RuleMessage) -> None:
        link = self._link
        if link is None:
            return
        context = ActionContext(
            publish=lambda topic, payload, qos: link.publish(topic, payload, qos=qos),
            sessions=self._sessions,
            http=self._http,
        )
        for rule in self._rules:
            try:
                output = evaluate(rule.query, message)
            except Exception:
                # A bug in one rule's evaluation must not keep the others from the message.
                logger.exception("rule-evaluation-failed rule=%s topic=%s", rule.name, message.topic)
                continue
            if output is None:
                continue
            counts = self._count(rule.name)
            counts.matched += 1
            outcome = await run_actions(rule.name, rule.actions, rule.error_action, output, message, context)
            if not outcome.failures:
                continue
            counts.actions_failed += len(outcome.failures)
            counts.last_error = str(outcome.failures[-1])
            counts.last_error_at = utcnow()
            for failure in outcome.failures:
                logger.warning("rule-action-failed rule=%s: %s", rule.name, failure)
            if outcome.error_action_failure is not None:
                logger.error("rule-error-action-failed rule=%s: %s", rule.name, outcome.error_action_failure)

    def _count(self, name: str) -> _Counts:
        return self._counts.setdefault(name, _Counts())

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self._flush()
            except Exception:
                logger.exception("rules-counters-not-stored")

    async def _flush(self) -> None:
        counts, self._counts = self._counts, {}
        if not counts:
            return
        deltas = {
            name: service.RuleCounters(
                matched=count.matched,
                actions_failed=count.actions_failed,
                last_error=count.last_error,
                last_error_at=count.last_error_at,
            )
            for name, count in counts.items()
        }
        try:
            await asyncio.to_thread(self._store_counts, deltas)
        except BaseException:
            # Keep what was not stored, so that the next flush adds it.
            for name, count in counts.items():
                kept = self._count(name)
                kept.matched += count.matched
                kept.actions_failed += count.actions_failed
                if kept.last_error is None:
                    kept.last_error, kept.last_error_at = count.last_error, count.last_error_at
            raise

    def _store_counts(self, deltas: dict[str, service.RuleCounters]) -> None:
        with self._sessions() as session:
            service.add_counters(session, deltas)
