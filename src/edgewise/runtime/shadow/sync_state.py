"""The shadow sync's side of the local store: read a shadow with its sync state, write what the cloud decided,
record an agreement. Each function is one transaction and runs on the store's thread
(:meth:`~edgewise.runtime.shadow.ShadowService.run_in_store`).

A write from the cloud is conditional: it happens only if the local shadow is still the one the decision was
made on (a component may have changed it while the sync talked to the cloud); otherwise nothing is written and
the sync decides again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgewise.protocol.shadow.document import (
    JsonObject,
    UpdateRequest,
    apply_update,
    delete_document,
    topic_prefix,
)
from edgewise.runtime.shadow.settings import ShadowKey
from edgewise.runtime.shadow.sync_decision import SideView, SyncRecord, replacement_patch, sections

#: The local bus messages a write produced, to publish once it committed: (topic, document).
Messages = list[tuple[str, JsonObject]]


@dataclass(frozen=True)
class LocalSnapshot:
    """The local shadow as the sync sees it, with its sync state."""

    view: SideView
    record: SyncRecord | None


if TYPE_CHECKING:
    from edgewise.runtime.shadow._store import ShadowStore


def _view(store: ShadowStore, key: ShadowKey) -> SideView:
    stored = store.read(key.thing, key.shadow)
    if stored is None:
        return SideView(0, None)
    return SideView(stored.shadow.version, None if stored.deleted else sections(stored.shadow.state))


def read_local(store: ShadowStore, key: ShadowKey) -> LocalSnapshot:
    """The local shadow and its sync state."""
    return LocalSnapshot(_view(store, key), store.read_synced(key.thing, key.shadow))


def write_local(
    store: ShadowStore,
    key: ShadowKey,
    *,
    expected: SideView,
    target: JsonObject | None,
    cloud_version: int,
    now: float,
    size_limit: int,
) -> Messages | None:
    """Make the local shadow hold ``target`` (None: delete it) and record the agreement at ``cloud_version``, if
    the local shadow is still ``expected``; None when it changed meanwhile (nothing written).

    Raises:
        PayloadTooLargeError: ``target`` is over the local size limit.
    """
    with store.transaction():
        if _view(store, key) != expected:
            return None
        prefix = topic_prefix(key.thing, key.shadow)
        stored = store.read(key.thing, key.shadow)
        messages: Messages = []
        if target is None:
            version = expected.version
            if stored is not None and not stored.deleted:
                store.mark_deleted(key.thing, key.shadow, updated_at=now)
                messages.append((f"{prefix}/delete/accepted", delete_document(version, now=int(now))))
        else:
            previous = None if stored is None or stored.deleted else stored.shadow
            patch = replacement_patch(sections(previous.state) if previous else {}, target)
            outcome = apply_update(
                previous,
                UpdateRequest(patch),
                current_version=expected.version,
                now=int(now),
                max_state_bytes=size_limit,
            )
            store.write(key.thing, key.shadow, outcome.shadow, updated_at=now)
            version = outcome.shadow.version
            messages.append((f"{prefix}/update/accepted", outcome.accepted))
            if outcome.delta is not None:
                messages.append((f"{prefix}/update/delta", outcome.delta))
            messages.append((f"{prefix}/update/documents", outcome.documents))
        store.set_synced(key.thing, key.shadow, SyncRecord(version, cloud_version, target))
    return messages


def record_agreement(store: ShadowStore, key: ShadowKey, record: SyncRecord) -> None:
    """Record that both sides hold ``record.state`` at its versions (the local side was not written)."""
    with store.transaction():
        store.set_synced(key.thing, key.shadow, record)
