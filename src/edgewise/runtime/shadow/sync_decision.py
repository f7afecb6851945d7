"""What the shadow sync does with one shadow, decided from the two sides and the last synced document. Pure
functions, no I/O.

The rule is Greengrass's (docs/runtime.md, "Conflicts"). The sync keeps, per shadow, the document both sides
held when they last agreed (:class:`SyncRecord`, the *base*) with the local and
the cloud version of that moment. A side whose version (or existence) differs from the base's has changed.

- Neither side changed: nothing to do.
- Only one side changed: the other side gets its document (or its delete).
- Both changed: a delete on either side wins; otherwise the documents are merged field by field against the base
  (:func:`merge_states`): a field only one side changed takes that side's value, and a field both changed takes
  the cloud's value in ``desired`` and the device's in ``reported``. The merge is written to both sides.
- ``deviceToCloud``: only local changes count, and the cloud is overwritten with the local document.
  ``cloudToDevice``: only cloud changes count, and the local shadow is overwritten with the cloud's.

The first sync of a shadow (no base yet) treats every field present on one side only as that side's change, so
the two documents are united, with the same owner per section where both hold a field with different values.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgewise.protocol.shadow.document import SECTIONS, JsonObject
from edgewise.runtime.shadow.settings import SyncDirection


@dataclass(frozen=True)
class SyncRecord:
    """The sync state of a shadow: what both sides held when they last agreed (``state`` None: no shadow), and
    the local and cloud versions of that moment."""

    local_version: int
    cloud_version: int
    state: dict[str, Any] | None


class _Missing:
    """A key a document does not have (distinct from JSON ``null``, which a stored shadow never holds)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
#: The section whose conflicting fields the cloud wins; the device wins the other (``reported``).
CLOUD_OWNS: Final = "desired"


@dataclass(frozen=True)
class SideView:
    """One side of a shadow as the sync sees it: its version and its state (``desired``/``reported``), or
    ``state`` None when the shadow does not exist there (never created, or deleted)."""

    version: int
    state: JsonObject | None


@dataclass(frozen=True)
class SyncDecision:
    """What both sides must hold after this sync (``target`` None: no shadow), and which sides to write."""

    target: JsonObject | None
    write_local: bool
    write_cloud: bool


def same(left: Any, right: Any) -> bool:
    """JSON equality: numbers by value (1 == 1.0), but a boolean is never a number; MISSING equals itself."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


def same_document(left: JsonObject | None, right: JsonObject | None) -> bool:
    """Whether two sides hold the same thing (both no shadow, or equal states)."""
    if left is None or right is None:
        return left is None and right is None
    return same(sections(left), sections(right))


def sections(state: Mapping[str, Any]) -> JsonObject:
    """The ``desired`` and ``reported`` sections of a state (a cloud ``get`` answer also carries ``delta``)."""
    return {key: state[key] for key in SECTIONS if isinstance(state.get(key), dict) and state[key]}


def _merge_value(base: Any, local: Any, cloud: Any, *, cloud_wins: bool) -> Any:
    if same(local, cloud) or same(cloud, base):
        return local
    if same(local, base):
        return cloud
    if isinstance(local, dict) and isinstance(cloud, dict):
        under = base if isinstance(base, dict) else {}
        merged: JsonObject = {}
        for key in [*local, *(key for key in cloud if key not in local)]:
            value = _merge_value(
                under.get(key, MISSING),
                local.get(key, MISSING),
                cloud.get(key, MISSING),
                cloud_wins=cloud_wins,
            )
            if value is not MISSING and value != {}:
                merged[key] = value
        return merged
    return cloud if cloud_wins else local


def merge_states(
    base: Mapping[str, Any] | None, local: Mapping[str, Any], cloud: Mapping[str, Any]
) -> JsonObject:
    """The three-way merge of two states that both changed since ``base`` (None: they were never synced).

    A field changed on one side only takes that side's value (a field removed on one side is removed); a field
    both sides changed differently takes the cloud's value in ``desired`` and the device's in ``reported``.
    Objects left empty disappear, as in any shadow.
    """
    under = sections(base or {})
    mine, theirs = sections(local), sections(cloud)
    merged: JsonObject = {}
    for section in SECTIONS:
        value = _merge_value(
            under.get(section, MISSING),
            mine.get(section, MISSING),
            theirs.get(section, MISSING),
            cloud_wins=section == CLOUD_OWNS,
        )
        if isinstance(value, dict) and value:
            merged[section] = copy.deepcopy(value)
    return merged


def replacement_patch(current: Mapping[str, Any], target: Mapping[str, Any]) -> JsonObject:
    """The update request ``state`` that turns ``current`` into ``target``: ``null`` for every key ``target``
    lacks, nested patches for objects on both sides, and ``target``'s value for anything else that differs.
    Empty when the two are the same."""
    patch: JsonObject = {key: None for key in current if key not in target}
    for key, value in target.items():
        old = current.get(key, MISSING)
        if isinstance(value, dict) and isinstance(old, dict):
            inner = replacement_patch(old, value)
            if inner:
                patch[key] = inner
        elif not same(old, value):
            patch[key] = copy.deepcopy(value)
    return patch


def _changed(view: SideView, record: SyncRecord | None, synced_version: int) -> bool:
    if record is None:
        return True
    if view.state is None:
        return record.state is not None
    return record.state is None or view.version != synced_version


def local_changed(local: SideView, record: SyncRecord | None) -> bool:
    """Whether the local shadow changed since the last sync (always, when it was never synced)."""
    return _changed(local, record, record.local_version if record else 0)


def cloud_changed(cloud: SideView, record: SyncRecord | None) -> bool:
    """Whether the cloud's shadow changed since the last sync (always, when it was never synced)."""
    return _changed(cloud, record, record.cloud_version if record else 0)


def decide(
    local: SideView, cloud: SideView, record: SyncRecord | None, direction: SyncDirection
) -> SyncDecision | None:
    """What to do with one shadow; None when there is nothing to do (in sync, or the change is one the direction
    ignores)."""
    target: JsonObject | None
    mine = None if local.state is None else sections(local.state)
    theirs = None if cloud.state is None else sections(cloud.state)
    if record is None:
        if mine is None and theirs is None:
            return None
        if direction is SyncDirection.DEVICE_TO_CLOUD:
            if mine is None:
                return None
            target = mine
        elif direction is SyncDirection.CLOUD_TO_DEVICE:
            if theirs is None:
                return None
            target = theirs
        elif mine is None or theirs is None:
            target = theirs if mine is None else mine
        else:
            target = merge_states(None, mine, theirs)
    else:
        from_device, from_cloud = local_changed(local, record), cloud_changed(cloud, record)
        if direction is SyncDirection.DEVICE_TO_CLOUD:
            if not from_device:
                return None
            target = mine
        elif direction is SyncDirection.CLOUD_TO_DEVICE:
            if not from_cloud:
                return None
            target = theirs
        elif from_device and from_cloud:
            target = None if mine is None or theirs is None else merge_states(record.state, mine, theirs)
        elif from_device:
            target = mine
        elif from_cloud:
            target = theirs
        else:
            return None
    return SyncDecision(
        target, write_local=not same_document(mine, target), write_cloud=not same_document(theirs, target)
    )
