"""``edgewise cloud up`` as a user runs it: a real process serving the API and a managed Mosquitto."""

from __future__ import annotations

import json
import signal
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from edgewise.cloud.identity import CertificateAuthority
from tests.integration.mosquitto import CertificateAuthority as OtherAuthority
from tests.integration.mosquitto import free_port, wait_until


class CloudProcess:
    """``python -m edgewise.cli cloud up`` on free ports in ``data_dir``; stops it with SIGTERM on exit."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.mqtt_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self._stderr = (data_dir.parent / f"{data_dir.name}.stderr").open("w")
        ports = ["--api-port", str(self.api_port), "--mqtt-port", str(self.mqtt_port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgewise.cli", "cloud", "up", "--data", str(data_dir), *ports, *extra],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
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
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("cloud-up") / "data") as process:
        yield process.wait_ready()


def mtls_connect(port: int, client_id: str, ca: Path, certificate: Path, key: Path) -> Any:
    """Connect a paho MQTT 5 client over mutual TLS; the CONNACK reason, or the TLS error."""
    answered = threading.Event()
    reasons: list[Any] = []

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        reasons.append(reason)
        answered.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.tls_set(str(ca), str(certificate), str(key))
    client.on_connect = on_connect
    client.on_connect_fail = lambda *args: answered.set()
    client.on_disconnect = lambda *args: answered.set()
    try:
        client.connect("localhost", port, keepalive=30)
    except (ssl.SSLError, OSError) as exc:
        return exc
    client.loop_start()
    try:
        answered.wait(20)
        return reasons[0] if reasons else None
    finally:
        client.disconnect()
        client.loop_stop()


def test_cloud_up_prints_where_things_are_and_the_token_once(cloud: CloudProcess) -> None:
    token_lines = [line for line in cloud.lines if line.startswith("Admin API token")]
    assert len(token_lines) == 1
    assert token_lines[0].endswith(cloud.admin_token)
    assert f"API:            {cloud.api_url}/api/v1 (docs at {cloud.api_url}/api/v1/docs)" in cloud.lines
    assert f"CA certificate: {cloud.data_dir / 'ca' / 'ca.pem'}" in cloud.lines
    endpoints = json.loads((cloud.data_dir / "cloud.json").read_text())
    assert endpoints["apiUrl"] == cloud.api_url
    assert endpoints["mqttEndpoint"].endswith(f":{cloud.mqtt_port}")


def test_api_answers_health_and_admin_token_works(cloud: CloudProcess) -> None:
    with cloud.api() as anonymous:
        assert anonymous.get("/health").json()["status"] == "ok"
        assert anonymous.get("/things").status_code == 401
    token_file = cloud.data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with cloud.api(cloud.admin_token) as admin:
        created = admin.post("/things", json={"thingName": "sensor-1"})
        assert created.status_code == 201, created.text
        assert admin.get("/things/sensor-1").json()["thingName"] == "sensor-1"


def test_ca_key_is_private(cloud: CloudProcess) -> None:
    assert stat.S_IMODE((cloud.data_dir / "ca" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((cloud.data_dir / "broker" / "server.key").stat().st_mode) == 0o600


def test_device_certificate_from_data_dir_ca_connects_over_mtls(cloud: CloudProcess, tmp_path: Path) -> None:
    ca_dir = cloud.data_dir / "ca"
    authority = CertificateAuthority.load((ca_dir / "ca.pem").read_text(), (ca_dir / "ca.key").read_text())
    issued, key_pem = authority.issue_with_new_key("sensor-2")
    (tmp_path / "device.pem").write_text(issued.certificate_pem)
    (tmp_path / "device.key").write_text(key_pem)
    reason = mtls_connect(
        cloud.mqtt_port, "sensor-2", ca_dir / "ca.pem", tmp_path / "device.pem", tmp_path / "device.key"
    )
    assert reason is not None
    assert not isinstance(reason, Exception), reason
    assert not reason.is_failure, reason


def test_device_certificate_from_another_ca_is_refused(cloud: CloudProcess, tmp_path: Path) -> None:
    other = OtherAuthority(tmp_path / "other").issue("sensor-3")
    reason = mtls_connect(
        cloud.mqtt_port, "sensor-3", cloud.data_dir / "ca" / "ca.pem", other.certificate, other.private_key
    )
    assert reason is None or isinstance(reason, Exception) or reason.is_failure, reason


def test_sigterm_stops_api_and_broker_and_restart_keeps_ca_and_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with CloudProcess(data_dir) as first:
        first.wait_ready()
        mosquitto = first.mosquitto_pids()
        assert len(mosquitto) == 1
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(20) == 0, first.stderr
        assert not process_alive(mosquitto[0])
        assert "cloud-stopping stage=api" in first.stderr
        assert first.stderr.index("stage=api") < first.stderr.index("broker-stopped")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first.api_url}/api/v1/health", timeout=2)
    ca_before = (data_dir / "ca" / "ca.pem").read_text()
    token = (data_dir / "admin-token").read_text()
    with CloudProcess(data_dir) as second:
        second.wait_ready()
        assert not any(line.startswith("Admin API token") for line in second.lines)
        with second.api(token.strip()) as admin:
            assert admin.get("/things").status_code == 200
    assert (data_dir / "ca" / "ca.pem").read_text() == ca_before


def test_external_broker_needs_an_mqtts_url(tmp_path: Path) -> None:
    runner = CliRunner()

    def up(*args: str) -> Result:
        return runner.invoke(
            app, ["cloud", "up", "--data", str(tmp_path / "data"), *args], env={"COLUMNS": "200"}
        )

    missing = up("--broker", "external")
    assert missing.exit_code == 1
    assert "error: Option 'broker_url' is required with an external broker" in missing.stderr
    wrong = up("--broker", "external", "--broker-url", "http://broker:1883")
    assert wrong.exit_code == 1
    assert "'http://broker:1883' is not of the form mqtts://host:port" in wrong.stderr
    managed = up("--broker-url", "mqtts://broker:8883")
    assert managed.exit_code == 1
    assert "is only for an external broker" in managed.stderr
    unknown = up("--broker", "cluster")
    assert unknown.exit_code == 1
    assert "--broker: expected 'managed' or 'external'" in unknown.stderr
    assert not (tmp_path / "data").exists()
