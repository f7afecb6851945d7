"""``edgewise cloud up`` as a real process for tests: free ports, its output lines, its API and its Mosquitto.

Usage::

    with CloudProcess(tmp_path / "data") as cloud:
        cloud.wait_ready()
        with cloud.api(cloud.admin_token) as admin:
            ...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.waiting import wait_until


class CloudProcess:
    """``python -m edgewise.cli cloud up`` on free ports (or the given MQTT port) in ``data_dir``; stops it with
    SIGTERM on exit."""

    def __init__(
        self, data_dir: Path, *extra: str, env: dict[str, str] | None = None, mqtt_port: int | None = None
    ) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.mqtt_port = free_port() if mqtt_port is None else mqtt_port
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self._stderr = (data_dir.parent / f"{data_dir.name}.stderr").open("w")
        self.data_plane_port = free_port()
        ports = ["--api-port", str(self.api_port), "--mqtt-port", str(self.mqtt_port)]
        ports += ["--data-plane-host", "127.0.0.1", "--data-plane-port", str(self.data_plane_port)]
        self.https_publish_port = free_port()
        ports += ["--https-publish-host", "127.0.0.1", "--https-publish-port", str(self.https_publish_port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgewise.cli", "cloud", "up", "--data", str(data_dir), *ports, *extra],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def __enter__(self) -> CloudProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    @property
    def stderr(self) -> str:
        return (self.data_dir.parent / f"{self.data_dir.name}.stderr").read_text()

    def wait_ready(self) -> CloudProcess:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"cloud up exited {self.process.returncode}: {self.stderr}")
            return any(line.startswith("Ready") for line in self.lines)

        wait_until(ready, timeout=60, what="edgewise cloud up to be ready")
        return self

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.api_url}/api/v1", headers=headers, timeout=10)

    def mosquitto_pids(self) -> list[int]:
        """The Mosquitto processes this cloud started (its children running mosquitto)."""
        pids = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            for child in (task / "children").read_text().split():
                if "mosquitto" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(child))
        return pids


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
