"""What to tell things after their executions changed: ``J/notify`` (JobExecutionsChanged) and
``J/notify-next`` (NextJobExecutionChanged), AWS IoT's rules.

For each (thing, namespace) a batch of committed changes touched:

- ``J/notify`` (``J/notify-namespace-<ns>`` for a namespaced job) lists the thing's pending executions, at most
  15, when the set of pending executions differs from before the batch; not when one only moved QUEUED →
  IN_PROGRESS;
- ``J/notify-next`` (plain jobs only) carries the next pending execution with its document, or just the
  timestamp when none is left, when the next execution is another one than before the batch.

"Before" is worked out from the pending list now and the batch's changes run backwards, so no state is kept
between batches. The pending lists of a batch's things are read together (one query per 500 things).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from edgewise.cloud.jobs import executions, protocol, rules
from edgewise.cloud.jobs.events import ExecutionChange, JobChange
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobExecution
from edgewise.protocol import jobs

Key = tuple[int, datetime.datetime, str, int]
Identity = tuple[str, int]
Pair = tuple[str, str | None]
#: Reads the pending lists of the given (thing, namespace) pairs now.
Pending = Callable[[Collection[Pair]], Mapping[Pair, list[tuple[JobExecution, Job]]]]


@dataclass(frozen=True)
class Message:
    """One notification to publish."""

    topic: str
    payload: dict[str, Any]


def _key(status: ExecutionStatus, queued_at: datetime.datetime, job_id: str, number: int) -> Key:
    return 0 if status is ExecutionStatus.IN_PROGRESS else 1, queued_at, job_id, number


def _pending_before(
    now_pending: Sequence[tuple[JobExecution, Job]], changes: Sequence[ExecutionChange]
) -> dict[Identity, Key]:
    """The pending list before ``changes``, as identity (job id, execution number) → order key."""
    entries = {
        (job.job_id, execution.execution_number): executions.order_key(execution, job)
        for execution, job in now_pending
    }
    earliest: dict[Identity, ExecutionChange] = {}
    for change in changes:
        earliest.setdefault((change.job_id, change.execution_number), change)
    for identity, change in earliest.items():
        entries.pop(identity, None)
        if change.old_status is not None and change.old_status.is_pending:
            entries[identity] = _key(change.old_status, change.queued_at, *identity)
    return entries


def _enters_or_leaves(change: ExecutionChange) -> bool:
    """Whether ``change`` adds its execution to its thing's pending list or takes it off."""
    was_pending = change.old_status is not None and change.old_status.is_pending
    return was_pending != change.status.is_pending


def _touched(changes: Iterable[JobChange]) -> dict[Pair, list[ExecutionChange]]:
    """The execution changes by (thing, namespace), without the pairs whose changes call for no message."""
    by_pair: dict[Pair, list[ExecutionChange]] = {}
    for change in changes:
        if isinstance(change, ExecutionChange):
            by_pair.setdefault((change.thing_name, change.namespace_id), []).append(change)
    # In a namespace, the same pending set (QUEUED -> IN_PROGRESS, say) calls for nothing: it has no notify-next.
    return {
        (thing, namespace): pair_changes
        for (thing, namespace), pair_changes in by_pair.items()
        if namespace is None or any(_enters_or_leaves(change) for change in pair_changes)
    }


def plan(changes: Iterable[JobChange], pending: Pending, *, now: datetime.datetime) -> list[Message]:
    """The notifications ``changes`` call for; ``pending(pairs)`` reads the pending lists of the (thing,
    namespace) pairs the changes touched, all at once."""
    by_pair = _touched(changes)
    if not by_pair:
        return []
    lists_now = pending(list(by_pair))
    stamp = protocol.timestamp(now)
    messages: list[Message] = []
    for (thing, namespace), pair_changes in by_pair.items():
        current = lists_now[thing, namespace]
        identities = [(job.job_id, execution.execution_number) for execution, job in current]
        before = _pending_before(current, pair_changes)
        if set(before) != set(identities):
            lists = protocol.pending_lists(current, limit=rules.NOTIFY_MAX_EXECUTIONS)
            changed = jobs.ExecutionsChanged(stamp, lists)
            messages.append(Message(jobs.notify_topic(thing, namespace), changed.payload()))
        if namespace is not None:
            continue
        next_before = min(before, key=before.__getitem__) if before else None
        if (identities[0] if identities else None) != next_before:
            following = protocol.execution_data(*current[0]) if current else None
            next_changed = jobs.NextExecutionChanged(stamp, following)
            messages.append(Message(jobs.notify_next_topic(thing), next_changed.payload()))
    return messages


def plan_from_store(
    session: Session, changes: Sequence[JobChange], *, now: datetime.datetime
) -> list[Message]:
    """:func:`plan` with pending lists read from ``session``. Blocks."""
    return plan(changes, lambda pairs: executions.pending_of(session, pairs), now=now)
