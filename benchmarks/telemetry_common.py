"""What the telemetry benchmarks share: an ``edgewise cloud up`` on ports chosen by the caller (so that it can be
stopped and started again where its devices expect it), devices enrolled with certificates, and the number of
telemetry messages in the cloud's store.

The benchmark scripts import this as ``telemetry_common`` (Python puts the script's folder on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fleet_fanout import DEVICE_POLICY, Cloud, Identity, call, free_port, issue


@dataclass(frozen=True)
class CloudPorts:
    """Where one cloud listens, kept across its restarts."""

    api: int
    mqtt: int
    data_plane: int

    @classmethod
    def free(cls) -> CloudPorts:
        return cls(free_port(), free_port(), free_port())


@contextmanager
def cloud_up(data_dir: Path, ports: CloudPorts) -> Iterator[Cloud]:
    """``python -m edgewise.cli cloud up`` on ``ports`` (HTTPS publish off), ready when yielded; stopped with
    SIGTERM, then killed with its whole process group, on the way out. ``data_dir`` may hold a previous run."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "edgewise.cli", "cloud", "up", "--data", str(data_dir)]
    command += ["--api-port", str(ports.api), "--mqtt-port", str(ports.mqtt)]
    command += ["--data-plane-host", "127.0.0.1", "--data-plane-port", str(ports.data_plane)]
    command += ["--https-publish-port", "0"]
    log = data_dir.parent / f"{data_dir.name}.log"
    with log.open("a") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Ready"):
                break
        else:
            raise RuntimeError(f"edgewise cloud up exited with {process.wait()}: {log.read_text()[-2000:]}")
        # Keep reading, or cloud up blocks once the pipe is full.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        endpoint = urlsplit(json.loads((data_dir / "cloud.json").read_text())["mqttEndpoint"])
        assert endpoint.hostname is not None
        assert endpoint.port is not None
        token = (data_dir / "admin-token").read_text().strip()
        yield Cloud(
            process, data_dir, f"http://127.0.0.1:{ports.api}", endpoint.hostname, endpoint.port, token
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("edgewise cloud up did not stop in 30 s; killing it")
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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
