"""Components end to end on ``edgewise cloud up``: the CLI publishes a recipe with two artifacts (progress, skip
when stored, reads, delete), and a device bootstrapped with its own certificate resolves it over MQTT and
downloads both artifacts from the data plane over HTTPS, resuming one, checking each digest."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from tests.cloud.broker.clients import TestClient
from tests.support.cloud_process import CloudProcess
from tests.support.pki import Credentials
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

NAME = "com.example.Cli"
APP = b"print('hello from the cloud')\n"
MODEL = os.urandom(2 * 1024 * 1024 + 5)
RECIPE = f"""\
RecipeFormatVersion: 2020-01-25
ComponentName: {NAME}
ComponentVersion: 1.0.0
ComponentPublisher: Edgewise tests
Manifests:
  - Platform: {{os: linux}}
    Artifacts:
      - Uri: s3://models/app.py
      - Uri: s3://models/v1/model.bin
        Unarchive: NONE
    Lifecycle:
      Run: python3 {{artifacts:path}}/app.py
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("components") / "data") as process:
        yield process.wait_ready()


def cli(cloud: CloudProcess, *args: str) -> Result:
    """``edgewise ...`` in-process, finding the API and the admin token through ``--data``."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": None, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(app, [*args, "--data", str(cloud.data_dir)], env=env)


@pytest.fixture(scope="module")
def published(cloud: CloudProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe file, published once through the CLI; model.bin sits in DIR/<name>/<version>/."""
    directory = tmp_path_factory.mktemp("component")
    (directory / "recipe.yaml").write_text(RECIPE)
    artifacts = directory / "artifacts"
    (artifacts / NAME / "1.0.0").mkdir(parents=True)
    (artifacts / "app.py").write_bytes(APP)
    (artifacts / NAME / "1.0.0" / "model.bin").write_bytes(MODEL)
    result = cli(
        cloud,
        "component",
        "publish",
        "--recipe",
        str(directory / "recipe.yaml"),
        "--artifacts",
        str(artifacts),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"Published {NAME} version 1.0.0"
    return directory


def test_publishing_again_skips_stored_artifacts_and_changes_nothing(
    cloud: CloudProcess, published: Path
) -> None:
    result = cli(
        cloud,
        "component",
        "publish",
        "--recipe",
        str(published / "recipe.yaml"),
        "--artifacts",
        str(published / "artifacts"),
    )
    assert result.exit_code == 0, result.stderr
    assert "already published with this recipe and these artifacts; nothing changed" in result.stdout
    assert "app.py (stored)" in result.stderr
    assert "model.bin (stored)" in result.stderr


def test_the_cli_reads_the_registry(cloud: CloudProcess, published: Path) -> None:
    listed = cli(cloud, "component", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [(item["componentName"], item["latestVersion"]) for item in json.loads(listed.stdout)] == [
        (NAME, "1.0.0")
    ]
    described = cli(cloud, "component", "describe", f"{NAME}==1.0.0", "--json")
    assert described.exit_code == 0, described.stderr
    artifacts = {a["fileName"]: a["sha256"] for a in json.loads(described.stdout)["artifacts"]}
    assert artifacts == {
        "app.py": hashlib.sha256(APP).hexdigest(),
        "model.bin": hashlib.sha256(MODEL).hexdigest(),
    }
    table = cli(cloud, "component", "describe", NAME)
    assert "Version:      1.0.0" in table.stdout
    assert "s3://models/v1/model.bin" in table.stdout
    versions = cli(cloud, "component", "versions", NAME)
    assert "1.0.0" in versions.stdout
    recipe = cli(cloud, "component", "recipe", NAME, "--version", "1.0.0", "--yaml")
    assert recipe.exit_code == 0, recipe.stderr
    assert f"Digest: {base64.b64encode(hashlib.sha256(MODEL).digest()).decode()}" in recipe.stdout
    as_json = json.loads(cli(cloud, "component", "recipe", NAME).stdout)
    assert as_json["Manifests"][0]["Artifacts"][0]["Algorithm"] == "SHA-256"


def test_cli_errors_name_the_problem(cloud: CloudProcess, published: Path, tmp_path: Path) -> None:
    missing = cli(
        cloud,
        "component",
        "publish",
        "--recipe",
        str(published / "recipe.yaml"),
        "--artifacts",
        str(tmp_path),
    )
    assert missing.exit_code == 1
    assert "the recipe names files that are not there: app.py" in missing.stderr
    (tmp_path / "bad.yaml").write_text("RecipeFormatVersion: 2020-01-25\nComponentName: x\n")
    bad = cli(cloud, "component", "publish", "--recipe", str(tmp_path / "bad.yaml"))
    assert bad.exit_code == 1
    assert "ComponentVersion: is required" in bad.stderr
    unknown = cli(cloud, "component", "describe", "com.example.Nope==1.0.0")
    assert unknown.exit_code == 1
    assert "error: Component version 'com.example.Nope@1.0.0' does not exist" in unknown.stderr
    contradiction = cli(cloud, "component", "describe", f"{NAME}==1.0.0", "--version", "2.0.0")
    assert contradiction.exit_code == 1


def test_a_device_resolves_and_downloads_the_artifacts(
    cloud: CloudProcess, published: Path, tmp_path: Path
) -> None:
    endpoints = json.loads((cloud.data_dir / "cloud.json").read_text())
    assert endpoints["dataPlaneUrl"] == f"https://127.0.0.1:{cloud.data_plane_port}"
    bootstrap = cli(cloud, "device", "bootstrap", "--thing", "sensor-7", "--out", str(tmp_path / "device"))
    assert bootstrap.exit_code == 0, bootstrap.stderr
    files = tmp_path / "device"
    identity = Credentials(files / "device.pem.crt", files / "private.pem.key", files / "root-ca.pem", 0)
    topic = "$aws/things/sensor-7/edgewise/components/resolve"
    with TestClient(cloud.mqtt_port, "sensor-7", identity=identity) as device:
        assert device.start(), device.connacks
        device.subscribe(f"{topic}/accepted", f"{topic}/rejected")
        request = json.dumps({"clientToken": "t1", "components": {NAME: "^1.0.0"}}).encode()
        # The device's permissions reach the broker's ACL moments after the bootstrap's last API write;
        # until then Mosquitto answers the publish with 'not authorized'.
        wait_until(lambda: not device.publish(topic, request).is_failure, what="the request to be authorized")
        device.wait_for(f"{topic}/accepted")
        accepted = next(m for m in device.messages if m.topic == f"{topic}/accepted")
        reply: dict[str, Any] = json.loads(accepted.payload)
    [candidate] = reply["components"][NAME]
    assert candidate["version"] == "1.0.0"
    context = ssl.create_default_context(cafile=str(files / "root-ca.pem"))
    with httpx.Client(verify=context, timeout=30) as https:
        for uri, expected in (("s3://models/app.py", APP), ("s3://models/v1/model.bin", MODEL)):
            artifact = candidate["artifacts"][uri]
            assert artifact["size"] == len(expected)
            head = https.get(artifact["url"], headers={"Range": "bytes=0-9"})
            assert head.status_code == 206
            rest = https.get(artifact["url"], headers={"Range": "bytes=10-"})
            assert rest.status_code == 206
            body = head.content + rest.content
            assert base64.b64encode(hashlib.sha256(body).digest()).decode() == artifact["digest"]
            assert body == expected
        forged = candidate["artifacts"]["s3://models/app.py"]["url"].replace("signature=", "signature=0")
        assert https.get(forged).status_code == 403


def test_deleting_a_version_removes_it(cloud: CloudProcess, published: Path, tmp_path: Path) -> None:
    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("1.0.0", "1.0.1"))
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "app.py").write_bytes(APP)
    (artifacts / "model.bin").write_bytes(MODEL)
    assert (
        cli(
            cloud,
            "component",
            "publish",
            "--recipe",
            str(tmp_path / "recipe.yaml"),
            "--artifacts",
            str(artifacts),
        ).exit_code
        == 0
    )
    deleted = cli(cloud, "component", "delete", NAME, "--version", "1.0.1")
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stdout.strip() == f"Deleted {NAME} version 1.0.1"
    versions = json.loads(cli(cloud, "component", "versions", NAME, "--json").stdout)
    assert [item["componentVersion"] for item in versions] == ["1.0.0"]
