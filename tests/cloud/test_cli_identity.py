"""``edgewise cert ...`` and ``edgewise policy ...`` end to end against a running ``edgewise cloud up``."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from tests.support.cloud_process import CloudProcess
from tests.support.pki import signing_request

pytestmark = pytest.mark.integration

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("cli-identity") / "data") as process:
        yield process.wait_ready()


def run(cloud: CloudProcess, *args: str) -> Result:
    """Run one CLI command in-process against ``cloud`` with its admin token."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": cloud.admin_token, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(app, [*args, "--api", cloud.api_url], env=env)


def ok(cloud: CloudProcess, *args: str) -> Any:
    """Run a ``--json`` command that must succeed; its decoded output."""
    result = run(cloud, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def failed(cloud: CloudProcess, *args: str) -> str:
    """Run a command that must fail with exit status 1; its error output."""
    result = run(cloud, *args)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error: "), result.stderr
    return " ".join(result.stderr.split())  # undo the console's line wrapping


def test_cert_create_generate_writes_certificate_and_private_key(cloud: CloudProcess, tmp_path: Path) -> None:
    ok(cloud, "thing", "create", "gen-1")
    issued = ok(cloud, "cert", "create", "--generate", "--thing", "gen-1", "--out", str(tmp_path / "out"))
    assert issued["commonName"] == "gen-1"
    assert issued["status"] == "ACTIVE"
    assert "privateKey" not in issued
    key_file = tmp_path / "out" / "private.pem.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate((tmp_path / "out" / "certificate.pem.crt").read_bytes())
    assert format(certificate.serial_number, "x") == issued["serialNumber"].lstrip("0")
    again = failed(cloud, "cert", "create", "--generate", "--out", str(tmp_path / "out"))
    assert "already exist" in again


def test_cert_create_from_csr_keeps_the_key_local(cloud: CloudProcess, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr_file = tmp_path / "device.csr"
    csr_file.write_text(signing_request("ignored", key))
    issued = ok(cloud, "cert", "create", "--csr", str(csr_file), "--out", str(tmp_path / "out"))
    certificate = x509.load_pem_x509_certificate(issued["certificatePem"].encode())
    assert certificate.public_key() == key.public_key()
    assert not (tmp_path / "out").exists()


def test_cert_create_needs_exactly_one_source(cloud: CloudProcess, tmp_path: Path) -> None:
    assert "exactly one of --csr FILE and --generate" in failed(cloud, "cert", "create")
    csr_file = tmp_path / "bad.csr"
    csr_file.write_text("not a CSR")
    assert "csr" in failed(cloud, "cert", "create", "--csr", str(csr_file))


def test_cert_list_describe_update_delete(cloud: CloudProcess, tmp_path: Path) -> None:
    issued = ok(cloud, "cert", "create", "--generate", "--out", str(tmp_path))
    certificate_id = issued["certificateId"]
    assert ok(cloud, "cert", "describe", certificate_id)["certificatePem"] == issued["certificatePem"]
    active = [item["certificateId"] for item in ok(cloud, "cert", "list", "--status", "active")]
    assert certificate_id in active
    assert "ACTIVE" in failed(cloud, "cert", "delete", certificate_id)
    updated = ok(cloud, "cert", "update", certificate_id, "--status", "INACTIVE")
    assert updated["status"] == "INACTIVE"
    table = run(cloud, "cert", "list", "--status", "INACTIVE")
    assert table.exit_code == 0, table.stderr
    assert certificate_id in table.stdout
    deleted = run(cloud, "cert", "delete", certificate_id)
    assert deleted.exit_code == 0, deleted.stderr
    assert certificate_id not in [item["certificateId"] for item in ok(cloud, "cert", "list")]
    assert certificate_id in failed(cloud, "cert", "describe", certificate_id)


def test_cert_errors_name_the_problem(cloud: CloudProcess) -> None:
    assert "--status: expected one of ACTIVE, INACTIVE, REVOKED, got 'GONE'" in failed(
        cloud, "cert", "list", "--status", "GONE"
    )
    assert "certificateId" in failed(cloud, "cert", "describe", "not-an-id")


def test_cert_attach_thing_refuses_a_certificate_issued_for_another(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    ok(cloud, "thing", "create", "attach-1")
    ok(cloud, "thing", "create", "attach-2")
    issued = ok(cloud, "cert", "create", "--generate", "--thing", "attach-1", "--out", str(tmp_path))
    attached = run(cloud, "cert", "attach-thing", issued["certificateId"], "attach-1")
    assert attached.exit_code == 0, attached.stderr
    assert "was issued for 'attach-1', not thing 'attach-2'" in failed(
        cloud, "cert", "attach-thing", issued["certificateId"], "attach-2"
    )


def test_policy_create_get_list_update_delete(cloud: CloudProcess, tmp_path: Path) -> None:
    document_file = tmp_path / "policy.json"
    document_file.write_text(json.dumps(POLICY))
    created = ok(cloud, "policy", "create", "connect-only", "--document", str(document_file))
    assert json.loads(created["policyDocument"]) == POLICY
    got = ok(cloud, "policy", "get", "connect-only")
    assert got["targets"] == {"certificateIds": [], "thingGroupNames": []}
    names = [policy["policyName"] for policy in ok(cloud, "policy", "list")]
    assert "connect-only" in names
    assert "EdgewiseDefaultDevicePolicy" in names
    publish = {**POLICY, "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]}
    updated = ok(cloud, "policy", "update", "connect-only", "--document", json.dumps(publish))
    assert json.loads(updated["policyDocument"]) == publish
    table = run(cloud, "policy", "get", "connect-only")
    assert table.exit_code == 0, table.stderr
    assert "iot:Publish" in table.stdout
    deleted = run(cloud, "policy", "delete", "connect-only")
    assert deleted.exit_code == 0, deleted.stderr
    assert "connect-only" in failed(cloud, "policy", "get", "connect-only")


def test_policy_attach_and_detach_to_certificate_and_group(cloud: CloudProcess, tmp_path: Path) -> None:
    ok(cloud, "policy", "create", "attachable", "--document", json.dumps(POLICY))
    certificate_id = ok(cloud, "cert", "create", "--generate", "--out", str(tmp_path))["certificateId"]
    ok(cloud, "group", "create", "fleet")
    for target in (["--cert", certificate_id], ["--group", "fleet"]):
        attached = run(cloud, "policy", "attach", "attachable", *target)
        assert attached.exit_code == 0, attached.stderr
    targets = ok(cloud, "policy", "get", "attachable")["targets"]
    assert targets == {"certificateIds": [certificate_id], "thingGroupNames": ["fleet"]}
    assert "attached" in failed(cloud, "policy", "delete", "attachable").lower()
    for target in (["--cert", certificate_id], ["--group", "fleet"]):
        detached = run(cloud, "policy", "detach", "attachable", *target)
        assert detached.exit_code == 0, detached.stderr
    assert ok(cloud, "policy", "get", "attachable")["targets"] == {
        "certificateIds": [],
        "thingGroupNames": [],
    }


def test_policy_errors_name_the_problem(cloud: CloudProcess, tmp_path: Path) -> None:
    assert "exactly one of --cert ID and --group NAME" in failed(cloud, "policy", "attach", "p")
    assert "--document: cannot read" in failed(
        cloud, "policy", "create", "p", "--document", str(tmp_path / "missing.json")
    )
    bad = failed(cloud, "policy", "create", "bad", "--document", '{"Version": "2012-10-17", "Statement": 3}')
    assert "Statement" in bad
    assert "no-such-group" in failed(
        cloud, "policy", "attach", "EdgewiseDefaultDevicePolicy", "--group", "no-such-group"
    )
