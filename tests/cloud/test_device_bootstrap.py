"""``edgewise device bootstrap`` against a running ``edgewise cloud up``, and a runtime using what it wrote."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from edgewise.runtime.config_file import load_config_file
from tests.support.cloud_process import CloudProcess
from tests.support.runtime_process import running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FILES = ("device.pem.crt", "private.pem.key", "root-ca.pem", "edgewise.yaml")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("bootstrap") / "data") as process:
        yield process.wait_ready()


def bootstrap(cloud: CloudProcess, *args: str) -> Result:
    """``edgewise device bootstrap`` in-process, finding the API, token and endpoint through ``--data``."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": None, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(app, ["device", "bootstrap", "--data", str(cloud.data_dir), *args], env=env)


def api_json(cloud: CloudProcess, path: str) -> object:
    with cloud.api(cloud.admin_token) as client:
        response = client.get(path)
        assert response.status_code == 200, response.text
        return response.json()


def test_bootstrap_registers_the_device_and_writes_its_files(cloud: CloudProcess, tmp_path: Path) -> None:
    result = bootstrap(cloud, "--thing", "boot-1", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "Created thing boot-1" in result.stdout
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in FILES}
    assert modes["private.pem.key"] == 0o600
    assert (tmp_path / "root-ca.pem").read_text() == (cloud.data_dir / "ca" / "ca.pem").read_text()
    principals = api_json(cloud, "/things/boot-1/principals")
    assert isinstance(principals, dict)
    [certificate] = principals["data"]
    assert certificate["certificatePem"] == (tmp_path / "device.pem.crt").read_text()
    targets = api_json(cloud, "/policies/EdgewiseDefaultDevicePolicy/targets")
    assert isinstance(targets, dict)
    assert certificate["certificateId"] in targets["certificateIds"]
    config = yaml.safe_load((tmp_path / "edgewise.yaml").read_text())
    assert config["thingName"] == "boot-1"
    assert config["cloud"]["port"] == cloud.mqtt_port
    # The cloud's HTTPS listener (S3 export uploads), from httpsPublishUrl in cloud.json.
    assert config["cloud"]["httpsPort"] == cloud.https_publish_port


def test_written_config_is_accepted_by_the_runtime(cloud: CloudProcess, tmp_path: Path) -> None:
    result = bootstrap(cloud, "--thing", "boot-2", "--out", str(tmp_path), "--endpoint", "localhost:1234")
    assert result.exit_code == 0, result.stderr
    settings = load_config_file(tmp_path / "edgewise.yaml")
    assert settings.thing_name == "boot-2"
    assert settings.cloud is not None
    assert (settings.cloud.endpoint, settings.cloud.port) == ("localhost", 1234)
    assert settings.cloud.private_key == tmp_path / "private.pem.key"


def test_bootstrap_refuses_to_overwrite_unless_forced(cloud: CloudProcess, tmp_path: Path) -> None:
    first = bootstrap(cloud, "--thing", "boot-3", "--out", str(tmp_path))
    assert first.exit_code == 0, first.stderr
    before = (tmp_path / "device.pem.crt").read_text()
    refused = bootstrap(cloud, "--thing", "boot-3", "--out", str(tmp_path))
    assert refused.exit_code == 1
    assert "give --force to overwrite" in " ".join(refused.stderr.split())
    assert (tmp_path / "device.pem.crt").read_text() == before
    forced = bootstrap(cloud, "--thing", "boot-3", "--out", str(tmp_path), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "Created thing" not in forced.stdout
    assert (tmp_path / "device.pem.crt").read_text() != before
    assert stat.S_IMODE((tmp_path / "private.pem.key").stat().st_mode) == 0o600


def test_bootstrap_errors_name_the_problem(cloud: CloudProcess, tmp_path: Path) -> None:
    bad_endpoint = bootstrap(cloud, "--thing", "boot-4", "--out", str(tmp_path), "--endpoint", "host:port")
    assert bad_endpoint.exit_code == 1
    assert "--endpoint: 'host:port' has a bad port" in bad_endpoint.stderr
    no_policy = bootstrap(cloud, "--thing", "boot-4", "--out", str(tmp_path), "--policy", "NoSuchPolicy")
    assert no_policy.exit_code == 1
    assert "NoSuchPolicy" in no_policy.stderr
    assert not (tmp_path / "edgewise.yaml").exists()


def test_runtime_with_the_bootstrapped_config_connects_to_the_cloud(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    out = tmp_path / "device"
    result = bootstrap(cloud, "--thing", "boot-5", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    with running(tmp_path / "root", "--config", str(out / "edgewise.yaml")) as runtime:
        wait_until(
            lambda: "Connected to the cloud at" in runtime.stderr(),
            timeout=30,
            what="the runtime's cloud link to connect",
        )
