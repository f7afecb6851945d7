"""``edgewise cloud up`` as a user runs it: a real process serving the API and a managed Mosquitto."""

from __future__ import annotations

import getpass
import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from edgewise.cloud.broker import render_password_file
from edgewise.cloud.identity import CertificateAuthority
from edgewise.cloud.preparation import ServerOptions, prepare
from edgewise.protocol.provisioning import CREATE_TOPIC
from tests.cloud.broker.clients import TestClient
from tests.support.cloud_process import CloudProcess, process_alive
from tests.support.mosquitto import MOSQUITTO, mtls_connect
from tests.support.pki import CertificateAuthority as OtherAuthority
from tests.support.pki import Credentials
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("cloud-up") / "data") as process:
        yield process.wait_ready()


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
    assert stat.S_IMODE((cloud.data_dir / "model-signing.key").stat().st_mode) == 0o600


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


def test_broker_options_are_checked_before_anything_is_created(tmp_path: Path) -> None:
    runner = CliRunner()
    ca_file = tmp_path / "broker-ca.pem"
    ca_file.write_text("not used: refused before it is read")

    def up(*args: str, password: str | None = None) -> Result:
        environment = {"COLUMNS": "200", "EDGEWISE_BROKER_PASSWORD": password}
        return runner.invoke(app, ["cloud", "up", "--data", str(tmp_path / "data"), *args], env=environment)

    def refused(*args: str, password: str | None = None) -> str:
        result = up(*args, password=password)
        assert result.exit_code == 1, result.output
        return result.stderr

    external = ("--broker", "external", "--broker-url")
    assert "error: Option 'broker_url' is required with an external broker" in refused("--broker", "external")
    assert "'http://broker:1883' is not of the form mqtt://host:port or mqtts://host:port" in refused(
        *external, "http://broker:1883"
    )
    assert "has credentials; give them separately" in refused(*external, "mqtts://user:secret@broker:8883")
    assert "Option 'broker_worker_url' is invalid" in refused(
        *external, "mqtts://broker:8883", "--broker-worker-url", "broker:8884"
    )
    assert "Option 'broker_password' is set without 'broker_username'" in refused(
        *external, "mqtt://broker:1883", password="worker-secret-0123456789"
    )
    assert "Option 'broker_ca_file' is only for TLS" in refused(
        *external,
        "mqtts://broker:8883",
        "--broker-worker-url",
        "mqtt://broker:1883",
        "--broker-ca",
        str(ca_file),
    )
    assert f"{tmp_path / 'missing.pem'} is not a file" in refused(
        *external, "mqtts://broker:8883", "--broker-ca", str(tmp_path / "missing.pem")
    )
    empty = tmp_path / "empty-password"
    empty.write_text("\n")
    assert f"--broker-password-file: {empty} is empty" in refused(
        *external, "mqtt://b:1883", "--broker-password-file", str(empty)
    )
    assert "EDGEWISE_BROKER_PASSWORD is set too" in refused(
        *external,
        "mqtt://b:1883",
        "--broker-password-file",
        str(ca_file),
        password="worker-secret-0123456789",
    )
    assert "is only for an external broker" in refused("--broker-url", "mqtts://broker:8883")
    assert "Option 'broker_username' is only for an external broker" in refused("--broker-username", "cloud")
    assert "--broker: expected 'managed' or 'external'" in refused("--broker", "cluster")
    assert not (tmp_path / "data").exists()


def test_managed_broker_ignores_a_broker_password_in_the_environment(tmp_path: Path) -> None:
    """The variable may be set for other commands; only an external broker reads it."""
    with CloudProcess(tmp_path / "data", env={"EDGEWISE_BROKER_PASSWORD": "elsewhere-0123456789"}) as cloud:
        cloud.wait_ready()
        assert len(cloud.mosquitto_pids()) == 1


class ExternalBroker:
    """A Mosquitto 2 that ``cloud up`` does not manage, configured by the test as an operator would."""

    def __init__(self, directory: Path, config: list[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "mosquitto.log"
        lines = ["persistence false", f"log_dest file {self.log}", "log_type all", *config]
        if os.geteuid() == 0:
            lines.insert(
                0, f"user {getpass.getuser()}"
            )  # else it drops to 'mosquitto', which cannot read tmp
        path = directory / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def running() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"mosquitto exited {self.process.returncode}: {self.log_text()}")
            return " running" in self.log_text()

        wait_until(running, what="the external Mosquitto to listen")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> ExternalBroker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def request_certificate(port: int, credentials: tuple[str, str]) -> dict[str, Any]:
    """Ask for a certificate and key over MQTT as a claim device would; the ``/accepted`` reply."""
    with TestClient(port, "factory", credentials=credentials) as client:
        assert client.start(), client.connacks
        client.subscribe(f"{CREATE_TOPIC}/accepted", f"{CREATE_TOPIC}/rejected")
        client.publish(CREATE_TOPIC, b"{}")
        client.wait_for(f"{CREATE_TOPIC}/accepted")
        reply: dict[str, Any] = json.loads(client.messages[-1].payload)
        return reply


PASSWORDS = {"edgewise-cloud": "worker-secret-0123456789", "factory": "factory-secret-0123456789"}


def password_file(directory: Path) -> Path:
    """Mosquitto's password file for :data:`PASSWORDS`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "passwd"
    path.write_text(render_password_file(PASSWORDS))
    return path


def test_external_broker_starts_no_mosquitto_and_its_workers_answer_there(tmp_path: Path) -> None:
    port = free_port()
    config = [
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {password_file(tmp_path / 'external')}",
        f"listener {port} 127.0.0.1",
    ]
    with ExternalBroker(tmp_path / "external", config) as external:
        url = f"mqtt://127.0.0.1:{port}"
        options = ("--broker", "external", "--broker-url", url, "--broker-username", "edgewise-cloud")
        environment = {"EDGEWISE_BROKER_PASSWORD": PASSWORDS["edgewise-cloud"]}
        with CloudProcess(tmp_path / "data", *options, env=environment) as cloud:
            cloud.wait_ready()
            assert cloud.mosquitto_pids() == []
            assert f"MQTT endpoint:  {url} (external broker)" in cloud.lines
            endpoints = json.loads((cloud.data_dir / "cloud.json").read_text())
            assert (endpoints["mqttEndpoint"], endpoints["broker"]) == (url, "external")
            assert not (cloud.data_dir / "broker" / "mosquitto.conf").exists()

            reply = request_certificate(port, ("factory", PASSWORDS["factory"]))
            assert reply["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
            assert "privateKey" in reply
            with cloud.api(cloud.admin_token) as admin:
                stored = admin.get(f"/certificates/{reply['certificateId']}")
                assert stored.status_code == 200, stored.text
                assert stored.json()["status"] == "INACTIVE"
        assert "u'edgewise-cloud'" in external.log_text()
        assert PASSWORDS["edgewise-cloud"] not in cloud.stderr


def enroll_device(admin: httpx.Client, thing_name: str, directory: Path, ca: Path) -> Credentials:
    """Thing ``thing_name`` with a generated certificate carrying the default device policy."""
    assert admin.post("/things", json={"thingName": thing_name}).status_code == 201
    created = admin.post("/certificates", json={"generateKeyPair": True, "thingName": thing_name})
    assert created.status_code == 201, created.text
    issued = created.json()
    policy = f"/policies/EdgewiseDefaultDevicePolicy/targets/certificates/{issued['certificateId']}"
    assert admin.put(policy).status_code == 204
    directory.mkdir(parents=True)
    (directory / "device.pem").write_text(issued["certificatePem"])
    (directory / "device.key").write_text(issued["privateKey"])
    return Credentials(
        directory / "device.pem", directory / "device.key", ca, int(issued["serialNumber"], 16)
    )


def test_external_mosquitto_configured_as_documented_serves_devices_and_workers(tmp_path: Path) -> None:
    """docs/cloud.md "An external broker": the server certificate ``cloud up`` leaves for the broker, the
    workers verifying it with the cloud's CA, devices by certificate with the pattern ACL."""
    data_dir = tmp_path / "data"
    device_port, worker_port, factory_port = free_port(), free_port(), free_port()
    url, worker_url = f"mqtts://127.0.0.1:{device_port}", f"mqtts://127.0.0.1:{worker_port}"
    # A first start prepares the data directory and the broker's certificate; the operator installs it.
    prepare(ServerOptions(data_dir=data_dir, broker="external", broker_url=url, broker_worker_url=worker_url))
    certificate, key, ca = (
        data_dir / "broker" / "server.pem",
        data_dir / "broker" / "server.key",
        data_dir / "ca" / "ca.pem",
    )
    issued = certificate.read_bytes()
    names = x509.load_pem_x509_certificate(issued).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert [str(address) for address in names.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    acl = tmp_path / "external" / "devices.acl"
    passwd = password_file(tmp_path / "external")
    acl.write_text("pattern readwrite $aws/things/%u/#\npattern readwrite dt/%u/#\n")
    config = [
        "per_listener_settings true",
        f"listener {device_port} 127.0.0.1",
        f"cafile {ca}",
        f"certfile {certificate}",
        f"keyfile {key}",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        f"acl_file {acl}",
        f"listener {worker_port} 127.0.0.1",
        f"certfile {certificate}",
        f"keyfile {key}",
        "allow_anonymous false",
        f"password_file {passwd}",
        # Plain, for the test's own requesting client only.
        f"listener {factory_port} 127.0.0.1",
        "allow_anonymous false",
        f"password_file {passwd}",
    ]
    secret = tmp_path / "broker-password"
    secret.write_text(PASSWORDS["edgewise-cloud"] + "\n")
    options = ["--broker", "external", "--broker-url", url, "--broker-worker-url", worker_url]
    options += ["--broker-username", "edgewise-cloud", "--broker-password-file", str(secret)]
    with ExternalBroker(tmp_path / "external", config):
        with CloudProcess(data_dir, *options) as cloud:
            cloud.wait_ready()
            assert f"MQTT endpoint:  {url} (external broker)" in cloud.lines
            assert f"Worker broker:  {worker_url}" in cloud.lines
            assert request_certificate(factory_port, ("factory", PASSWORDS["factory"]))["certificateId"]
            with cloud.api(cloud.admin_token) as admin:
                identity = enroll_device(admin, "S", tmp_path / "S", ca)
            with TestClient(device_port, "S", identity=identity) as device:
                assert device.start(), device.connacks
                device.subscribe("dt/S/#", "dt/T/#")
                assert device.publish("dt/T/telemetry").is_failure
                assert not device.publish("dt/S/telemetry").is_failure
                device.wait_for("dt/S/telemetry")
                assert device.topics() == ["dt/S/telemetry"]
        assert certificate.read_bytes() == issued  # kept: still valid for the broker's address

        stranger = OtherAuthority(tmp_path / "other")
        with CloudProcess(data_dir, *options, "--broker-ca", str(stranger.certificate)) as refused:
            assert refused.process.wait(60) == 1
            assert f"A worker cannot connect to the broker at {worker_url}" in refused.stderr
            assert "certificate verify failed" in refused.stderr
