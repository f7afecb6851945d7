"""Secrets deployed to a real runtime and read by a component with the real awsiotsdk client v2: policies by
ARN and by name, every lookup, and no plaintext anywhere under the runtime root."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from edgewise.runtime.ipc.client import IpcCallError
from tests.support.runtime_process import RuntimeProcess, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
CLIENTS = Path(__file__).parent / "clients"
SECRET_MANAGER = "aws.greengrass.SecretManager"
ACCOUNT = "arn:aws:secretsmanager:us-east-1:123456789012:secret"
DB_ARN, CERT_ARN, OTHER_ARN = (
    f"{ACCOUNT}:db-password-AbCdEf",
    f"{ACCOUNT}:device-cert-Qq1Ww2",
    f"{ACCOUNT}:other-Zz9Yy8",
)
CURRENT, PREVIOUS, OTHER = "pw-current-4be1c7d9", "pw-previous-92aa0f13", "other-value-6d01b2e8"
BINARY = b"\x00\x01cert-bytes-5f7c\xfe"
SECRETS: list[dict[str, Any]] = [
    {
        "arn": DB_ARN,
        "name": "db-password",
        "versionId": "v2",
        "versionStages": ["AWSCURRENT"],
        "secretString": CURRENT,
    },
    {"arn": DB_ARN, "versionId": "v1", "versionStages": ["AWSPREVIOUS"], "secretString": PREVIOUS},
    {"arn": CERT_ARN, "versionId": "c1", "secretBinary": base64.b64encode(BINARY).decode()},
    {"arn": OTHER_ARN, "versionId": "o1", "secretString": OTHER},
]
PLAINTEXTS = [CURRENT.encode(), PREVIOUS.encode(), OTHER.encode(), BINARY, base64.b64encode(BINARY)]
CALLS = {
    "db_by_name": {"secret_id": "db-password"},
    "db_previous_by_arn": {"secret_id": DB_ARN, "version_stage": "AWSPREVIOUS"},
    "db_by_version_id": {"secret_id": DB_ARN, "version_id": "v1"},
    "db_refresh": {"secret_id": "db-password", "refresh": True},
    "db_missing_stage": {"secret_id": "db-password", "version_stage": "AWSPENDING"},
    "cert_by_arn_with_a_name_policy": {"secret_id": CERT_ARN},
    "other_without_policy": {"secret_id": "other"},
    "missing_with_policy": {"secret_id": "missing-db"},
    "missing_without_policy": {"secret_id": "nowhere"},
}


def _files_holding_plaintext(root: Path, plaintexts: list[bytes]) -> list[str]:
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if path.is_socket() or not path.is_file():
                continue
            content = path.read_bytes()
            found += [f"{path} holds {text!r}" for text in plaintexts if text in content]
    return found


def _reader(recipes: Path, artifacts: Path, out: Path, calls: Path) -> None:
    source = artifacts / "test.SecretReader" / "1.0.0"
    source.mkdir(parents=True)
    shutil.copy(CLIENTS / "secret_reader.py", source / "secret_reader.py")
    policy = {
        SECRET_MANAGER: {
            "test.SecretReader:by-arn": {
                "operations": ["aws.greengrass#GetSecretValue"],
                "resources": [DB_ARN],
            },
            "test.SecretReader:by-name": {
                "operations": ["aws.greengrass#GetSecretValue"],
                "resources": ["device-cert", "missing-*"],
            },
        }
    }
    write_recipe(
        recipes,
        "test.SecretReader",
        "1.0.0",
        f"""\
        ComponentConfiguration:
          DefaultConfiguration:
            accessControl: '{json.dumps(policy)}'
        Manifests:
          - Artifacts:
              - Uri: file:secret_reader.py
            Lifecycle:
              Run: {sys.executable} {{artifacts:path}}/secret_reader.py {out} {calls}
        """,
    )


def _deploy_secrets(runtime: RuntimeProcess, secrets: list[dict[str, Any]], **request: Any) -> dict[str, Any]:
    body = {
        "rootComponentVersionsToAdd": {SECRET_MANAGER: "2.12.0", **request.pop("roots", {})},
        "componentToConfiguration": {SECRET_MANAGER: {"MERGE": {"secrets": secrets}}},
        **request,
    }
    return runtime.wait_deployment(runtime.call("CreateLocalDeployment", body)["deploymentId"])


def test_a_component_reads_the_secrets_its_policies_allow_and_no_plaintext_is_stored(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    out, calls = tmp_path / "secrets-read.json", tmp_path / "calls.json"
    calls.write_text(json.dumps(CALLS))
    _reader(recipes, artifacts, out, calls)

    deployment = _deploy_secrets(
        runtime,
        SECRETS,
        roots={"test.SecretReader": "1.0.0"},
        recipeDirectoryPath=str(recipes),
        artifactsDirectoryPath=str(artifacts),
    )

    assert deployment["status"] == "SUCCEEDED"
    results = json.loads(
        wait_until(lambda: out.read_text() if out.exists() else "", timeout=90, what="the reader")
    )
    assert results["db_by_name"]["ok"] == {
        "secretId": DB_ARN,
        "versionId": "v2",
        "versionStage": ["AWSCURRENT"],
        "secretString": CURRENT,
        "secretBinary": None,
    }
    assert results["db_previous_by_arn"]["ok"]["secretString"] == PREVIOUS
    assert results["db_by_version_id"]["ok"]["versionStage"] == ["AWSPREVIOUS"]
    assert results["db_refresh"]["ok"]["secretString"] == CURRENT
    assert results["db_missing_stage"]["error"] == "ResourceNotFoundError"
    cert = results["cert_by_arn_with_a_name_policy"]["ok"]
    assert base64.b64decode(cert["secretBinary"]) == BINARY
    assert cert["secretId"] == CERT_ARN
    assert results["other_without_policy"]["error"] == "UnauthorizedError"
    assert OTHER_ARN in results["other_without_policy"]["message"]
    assert results["missing_with_policy"]["error"] == "ResourceNotFoundError"
    assert results["missing_without_policy"]["error"] == "UnauthorizedError"

    stored = runtime.call("GetComponentDetails", {"componentName": SECRET_MANAGER})["componentDetails"]
    assert stored["configuration"]["secrets"][0]["secretString"] == {"encrypted": True}
    runtime.stop()
    assert _files_holding_plaintext(runtime.paths.root, PLAINTEXTS) == []
    key = runtime.paths.root / "secrets" / "secret.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_secrets_survive_a_restart_and_a_bad_deployment_fails_without_leaking(
    runtime: RuntimeProcess,
) -> None:
    assert _deploy_secrets(runtime, SECRETS)["status"] == "SUCCEEDED"
    runtime.stop()
    restarted = RuntimeProcess(runtime.paths.root).start()
    try:
        value = restarted.call("GetSecretValue", {"secretId": "db-password"})
        assert value["secretValue"] == {"secretString": CURRENT}

        leaked, changed = "bad-plaintext-0c9e55aa", "changed-value-3b7d21f0"
        bad = [
            {"arn": DB_ARN, "secretString": leaked},
            {"arn": DB_ARN, "versionId": "v2", "secretString": changed},
        ]
        failed = _deploy_secrets(restarted, bad)

        assert failed["status"] == "FAILED"
        cause = failed["deploymentStatusDetails"]["deploymentFailureCause"]
        assert "secrets[0].versionId" in cause
        assert "immutable" in cause
        assert leaked not in cause
        with pytest.raises(IpcCallError) as caught:
            restarted.call("GetSecretValue", {"secretId": "db-password", "versionId": "v9"})
        assert caught.value.error_code == "ResourceNotFoundError"
        assert restarted.call("GetSecretValue", {"secretId": DB_ARN})["secretValue"] == {
            "secretString": CURRENT
        }
    finally:
        restarted.stop()
    assert (
        _files_holding_plaintext(runtime.paths.root, [*PLAINTEXTS, leaked.encode(), changed.encode()]) == []
    )
