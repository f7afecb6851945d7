"""What the telemetry benchmarks share: an ``edgewise cloud up`` on ports chosen by the caller (so that it can be
stopped and started again where its devices expect it), devices enrolled with certificates, and the number of
telemetry messages in the cloud's store.

The benchmark scripts import this as ``telemetry_common`` (Python puts the script's folder on ``sys.path``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from fleet_fanout import DEVICE_POLICY, Cloud, Identity, call, issue


def enroll(
    cloud: Cloud, group: str, names: Sequence[str], directory: Path, policies: dict[str, object]
) -> list[Identity]:
    """A thing group holding a new thing with a certificate for each of ``names``; the default device policy
    and ``policies`` (name -> document, created here) are attached to the group."""
    directory.mkdir(parents=True, exist_ok=True)
    with cloud.api() as api:
        call(api, "POST", "/thing-groups", {"thingGroupName": group})
        for name, document in policies.items():
            call(api, "POST", "/policies", {"policyName": name, "policyDocument": json.dumps(document)})
        for policy in (DEVICE_POLICY, *policies):
            call(api, "PUT", f"/policies/{policy}/targets/thing-groups/{group}")
        identities = []
        for name in names:
            identities.append(issue(api, name, directory)[0])
            call(api, "PUT", f"/thing-groups/{group}/things/{name}")
    return identities


class StoredMessages:
    """Counts the telemetry messages in the cloud's SQLite store, read-only, by row id: counting only the rows
    after a mark scans only those, where the API's per-stream totals would aggregate the whole table on every
    poll and take the CPU the ingest is being measured on."""

    def __init__(self, database: Path) -> None:
        self._connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, check_same_thread=False)

    def mark(self) -> int:
        """The id of the newest stored message (0 when there is none)."""
        return int(
            self._connection.execute("SELECT coalesce(max(id), 0) FROM telemetry_messages").fetchone()[0]
        )

    def after(self, mark: int) -> int:
        """How many messages were stored after ``mark``."""
        query = "SELECT count(*) FROM telemetry_messages WHERE id > ?"
        return int(self._connection.execute(query, (mark,)).fetchone()[0])

    def close(self) -> None:
        self._connection.close()
