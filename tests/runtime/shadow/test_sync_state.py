"""The sync state in the local shadow store: a schema version 1 database is migrated with its shadows kept, a
write from the cloud and its sync state commit together, and only if the local shadow is still the one the
decision was made on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from edgewise.protocol.shadow.document import Shadow
from edgewise.runtime.shadow._store import SCHEMA_VERSION, ShadowStore, SyncRecord
from edgewise.runtime.shadow.settings import ShadowKey
from edgewise.runtime.shadow.sync_decision import SideView
from edgewise.runtime.shadow.sync_state import LocalSnapshot, read_local, record_agreement, write_local

KEY = ShadowKey("pump", "")
_V1_SCHEMA = """
CREATE TABLE shadows (
    thing_name TEXT NOT NULL, shadow_name TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL,
    metadata TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL,
    synced_version INTEGER, cloud_version INTEGER, PRIMARY KEY (thing_name, shadow_name)
) WITHOUT ROWID
"""


def test_a_version_1_database_is_migrated_and_keeps_its_shadows(tmp_path: Path) -> None:
    path = tmp_path / "shadows.db"
    with sqlite3.connect(path) as old:
        old.execute(_V1_SCHEMA)
        old.execute(
            "INSERT INTO shadows VALUES ('pump', '', 3, ?, '{}', 0, 1.0, NULL, NULL)",
            (json.dumps({"reported": {"on": True}}),),
        )
        old.execute("PRAGMA user_version=1")
    old.close()

    store = ShadowStore.open(path)
    try:
        snapshot = read_local(store, KEY)
        assert snapshot.view == SideView(3, {"reported": {"on": True}})
        assert snapshot.record is None
        record_agreement(store, KEY, SyncRecord(3, 7, {"reported": {"on": True}}))
        assert read_local(store, KEY).record == SyncRecord(3, 7, {"reported": {"on": True}})
    finally:
        store.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    check.close()
    ShadowStore.open(path).close()  # opening an up-to-date database changes nothing


def test_a_cloud_write_creates_the_shadow_records_the_agreement_and_gives_the_local_messages(
    tmp_path: Path,
) -> None:
    store = ShadowStore.open(tmp_path / "shadows.db")
    try:
        target = {"desired": {"on": True}, "reported": {"on": False}}
        messages = write_local(
            store, KEY, expected=SideView(0, None), target=target, cloud_version=5, now=100.0, size_limit=8192
        )

        assert messages is not None
        assert [topic.rsplit("/", 2)[-2:] for topic, _ in messages] == [
            ["update", "accepted"],
            ["update", "delta"],
            ["update", "documents"],
        ]
        assert messages[1][1]["state"] == {"on": True}
        snapshot = read_local(store, KEY)
        assert snapshot.view == SideView(1, target)
        assert snapshot.record == SyncRecord(1, 5, target)

        deleted = write_local(
            store, KEY, expected=SideView(1, target), target=None, cloud_version=5, now=101.0, size_limit=8192
        )
        assert deleted is not None
        assert [topic for topic, _ in deleted] == ["$aws/things/pump/shadow/delete/accepted"]
        assert read_local(store, KEY) == LocalSnapshot(SideView(1, None), SyncRecord(1, 5, None))
    finally:
        store.close()


def test_a_cloud_write_on_a_shadow_that_changed_meanwhile_writes_nothing(tmp_path: Path) -> None:
    store = ShadowStore.open(tmp_path / "shadows.db")
    try:
        store.write("pump", "", Shadow({"reported": {"on": True}}, {}, 2), updated_at=1.0)
        stale = SideView(1, {"reported": {"on": False}})

        outcome = write_local(
            store,
            KEY,
            expected=stale,
            target={"desired": {"on": False}},
            cloud_version=9,
            now=2.0,
            size_limit=8192,
        )

        assert outcome is None
        assert read_local(store, KEY).view == SideView(2, {"reported": {"on": True}})
        assert read_local(store, KEY).record is None
    finally:
        store.close()
