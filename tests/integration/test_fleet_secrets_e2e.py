"""Secrets in a fleet deployment end to end: a real ``edgewise cloud up`` stores them sealed and shows them
redacted, and a real runtime gets them over MQTT and serves them to a component reading with the real awsiotsdk
client v2."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.test_cli_registry import ok
from tests.integration.test_fleet_e2e import Fleet, wait_statuses
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
CLIENTS = Path(__file__).parent / "clients"
SECRET_MANAGER = "aws.greengrass.SecretManager"
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fleet-db-AbCdEf"
VALUE = "fleet-secret-7d3f19a2"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("fleet-secrets") / "data") as process:
        yield process.wait_ready()


def _publish_reader(cloud: CloudProcess, directory: Path, out: Path, calls: Path) -> None:
    artifacts = directory / "reader-artifacts"
    artifacts.mkdir()
    shutil.copy(CLIENTS / "secret_reader.py", artifacts / "secret_reader.py")
    policy = {
        SECRET_MANAGER: {
            "e2e.SecretReader:db": {"operations": ["aws.greengrass#GetSecretValue"], "resources": [ARN]}
        }
    }
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "e2e.SecretReader",
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {"DefaultConfiguration": {"accessControl": policy}},
        "Manifests": [
            {
                "Platform": {"os": "*"},
                "Artifacts": [{"Uri": "s3://bucket/e2e.SecretReader/1.0.0/secret_reader.py"}],
                "Lifecycle": {"Run": f"{sys.executable} {{artifacts:path}}/secret_reader.py {out} {calls}"},
            }
        ],
    }
    recipe_file = directory / "reader.json"
    recipe_file.write_text(json.dumps(recipe))
    ok(cloud, "component", "publish", "--recipe", str(recipe_file), "--artifacts", str(artifacts))


def test_a_device_reads_a_deployed_secret_that_the_cloud_keeps_sealed_and_shows_redacted(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    out, calls = tmp_path / "read.json", tmp_path / "calls.json"
    calls.write_text(json.dumps({"db": {"secret_id": ARN}}))
    _publish_reader(cloud, tmp_path, out, calls)
    fleet = Fleet(cloud, tmp_path)
    try:
        fleet.enroll("vault-1").start()
        body = {
            "targetArn": "vault-1",
            "components": {
                "e2e.SecretReader": {"componentVersion": "1.0.0"},
                SECRET_MANAGER: {
                    "componentVersion": "2.12.0",
                    "configurationUpdate": {
                        "merge": {"secrets": [{"arn": ARN, "versionId": "v1", "secretString": VALUE}]}
                    },
                },
            },
        }
        request = tmp_path / "deployment.json"
        request.write_text(json.dumps(body))
        deployment = ok(cloud, "deployment", "create", "--file", str(request))["deploymentId"]
        wait_statuses(cloud, deployment, {"vault-1": "SUCCEEDED"})
        results = json.loads(wait_until(lambda: out.read_text() if out.exists() else "", what="the reader"))
        assert results["db"]["ok"]["secretString"] == VALUE
    finally:
        fleet.stop()

    shown = ok(cloud, "deployment", "status", deployment)
    assert VALUE not in json.dumps(shown)
    secret = shown["components"][SECRET_MANAGER]["configurationUpdate"]["merge"]["secrets"][0]
    assert secret["secretString"] == "<redacted>"
    for stored in cloud.data_dir.glob("edgewise.db*"):  # the database and its write-ahead log
        assert VALUE.encode() not in stored.read_bytes(), stored
