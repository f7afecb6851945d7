"""``edgewise provisioning-template ...`` and ``edgewise cert create-claim`` against a running ``edgewise cloud up``."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from edgewise.cloud.identity import DEFAULT_DEVICE_POLICY_NAME
from tests.support.cloud_process import CloudProcess

pytestmark = pytest.mark.integration

TEMPLATE_BODY: dict[str, Any] = {
    "Parameters": {"SerialNumber": {"Type": "String"}, "Site": {"Type": "String", "Default": "berlin"}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Fn::Join": ["-", ["sensor", {"Ref": "SerialNumber"}]]},
                "AttributePayload": {"site": {"Ref": "Site"}},
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": DEFAULT_DEVICE_POLICY_NAME}},
    },
    "DeviceConfiguration": {"serial": {"Ref": "SerialNumber"}},
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("cli-provisioning") / "data") as process:
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
    """Run a command that must fail with exit status 1; its error output, unwrapped."""
    result = run(cloud, *args)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith("error: "), result.stderr
    return " ".join(result.stderr.split())


def body_file(directory: Path, body: Any = TEMPLATE_BODY, name: str = "template.json") -> str:
    path = directory / name
    path.write_text(json.dumps(body))
    return str(path)


def template_names(cloud: CloudProcess) -> list[str]:
    return [template["templateName"] for template in ok(cloud, "provisioning-template", "list")]


def test_template_create_list_describe_update_delete(cloud: CloudProcess, tmp_path: Path) -> None:
    created = ok(
        cloud,
        "provisioning-template",
        "create",
        "sensors",
        "--template-body",
        body_file(tmp_path),
        "--description",
        "Factory sensors",
    )
    assert created["templateName"] == "sensors"
    assert created["templateBody"] == TEMPLATE_BODY
    assert created["description"] == "Factory sensors"
    assert created["enabled"] is True
    assert "sensors" in template_names(cloud)
    assert ok(cloud, "provisioning-template", "describe", "sensors")["templateBody"] == TEMPLATE_BODY

    table = run(cloud, "provisioning-template", "describe", "sensors")
    assert table.exit_code == 0, table.stderr
    assert "Factory sensors" in table.stdout
    assert '"AWS::IoT::Certificate::Id"' in table.stdout

    disabled = ok(cloud, "provisioning-template", "update", "sensors", "--disabled")
    assert disabled["enabled"] is False
    assert disabled["description"] == "Factory sensors"
    without_site = {**TEMPLATE_BODY, "Parameters": {"SerialNumber": {"Type": "String"}}}
    without_site["Resources"] = {
        **TEMPLATE_BODY["Resources"],
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": {"Fn::Join": ["-", ["sensor", {"Ref": "SerialNumber"}]]}},
        },
    }
    updated = ok(
        cloud,
        "provisioning-template",
        "update",
        "sensors",
        "--template-body",
        json.dumps(without_site),
        "--enabled",
        "--description",
        "",
    )
    assert updated["templateBody"] == without_site
    assert updated["enabled"] is True
    assert updated["description"] == ""

    listed = run(cloud, "provisioning-template", "list")
    assert listed.exit_code == 0, listed.stderr
    assert "sensors" in listed.stdout
    deleted = run(cloud, "provisioning-template", "delete", "sensors")
    assert deleted.exit_code == 0, deleted.stderr
    assert "Deleted provisioning template sensors" in deleted.stdout
    assert "sensors" not in template_names(cloud)
    assert "sensors" in failed(cloud, "provisioning-template", "describe", "sensors")


def test_template_created_disabled_stays_disabled(cloud: CloudProcess, tmp_path: Path) -> None:
    created = ok(
        cloud,
        "provisioning-template",
        "create",
        "paused",
        "--template-body",
        body_file(tmp_path),
        "--disabled",
    )
    assert created["enabled"] is False
    assert ok(cloud, "provisioning-template", "describe", "paused")["enabled"] is False


def test_template_body_errors_name_the_option_and_create_nothing(cloud: CloudProcess, tmp_path: Path) -> None:
    missing = failed(
        cloud, "provisioning-template", "create", "bad", "--template-body", str(tmp_path / "nope.json")
    )
    assert f"--template-body: cannot read {tmp_path / 'nope.json'}" in missing
    not_json = tmp_path / "broken.json"
    not_json.write_text("{ not json")
    assert f"--template-body: {not_json} is not JSON" in failed(
        cloud, "provisioning-template", "create", "bad", "--template-body", str(not_json)
    )
    assert "must be a JSON object, not list" in failed(
        cloud, "provisioning-template", "create", "bad", "--template-body", body_file(tmp_path, [1, 2])
    )
    no_resources = failed(
        cloud,
        "provisioning-template",
        "create",
        "bad",
        "--template-body",
        body_file(tmp_path, {"Parameters": {}, "Resources": {}}),
    )
    assert "Resources" in no_resources
    unknown_policy = json.loads(json.dumps(TEMPLATE_BODY))
    unknown_policy["Resources"]["policy"]["Properties"]["PolicyName"] = "NoSuchPolicy"
    assert "NoSuchPolicy" in failed(
        cloud,
        "provisioning-template",
        "create",
        "bad",
        "--template-body",
        body_file(tmp_path, unknown_policy),
    )
    assert "bad" not in template_names(cloud)


def test_template_update_and_name_errors(cloud: CloudProcess, tmp_path: Path) -> None:
    ok(cloud, "provisioning-template", "create", "kept", "--template-body", body_file(tmp_path))
    assert "Nothing to change" in failed(cloud, "provisioning-template", "update", "kept")
    assert "kept" in failed(
        cloud, "provisioning-template", "create", "kept", "--template-body", body_file(tmp_path)
    )
    assert "Resources" in failed(
        cloud,
        "provisioning-template",
        "update",
        "kept",
        "--template-body",
        json.dumps({"Resources": {}}),
    )
    assert ok(cloud, "provisioning-template", "describe", "kept")["templateBody"] == TEMPLATE_BODY
    assert "templateName" in failed(
        cloud, "provisioning-template", "create", "has space", "--template-body", body_file(tmp_path)
    )
    assert "missing" in failed(cloud, "provisioning-template", "delete", "missing")


def test_cert_create_claim_writes_the_claim_certificate_and_key(cloud: CloudProcess, tmp_path: Path) -> None:
    out = tmp_path / "claim"
    issued = ok(cloud, "cert", "create-claim", "--policy", DEFAULT_DEVICE_POLICY_NAME, "--out", str(out))
    assert issued["commonName"].startswith("claim-")
    assert "privateKey" not in issued
    key_file = out / "claim.private.pem.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate((out / "claim.pem.crt").read_bytes())
    assert certificate.public_key() == key.public_key()
    assert certificate.public_bytes(serialization.Encoding.PEM).decode() == issued["certificatePem"]
    described = ok(cloud, "cert", "describe", issued["certificateId"])
    assert described["status"] == "ACTIVE"
    targets = ok(cloud, "policy", "get", DEFAULT_DEVICE_POLICY_NAME)["targets"]
    assert issued["certificateId"] in targets["certificateIds"]

    again = failed(cloud, "cert", "create-claim", "--policy", DEFAULT_DEVICE_POLICY_NAME, "--out", str(out))
    assert "already exist" in again
    table = run(
        cloud, "cert", "create-claim", "--policy", DEFAULT_DEVICE_POLICY_NAME, "--out", str(tmp_path / "t")
    )
    assert table.exit_code == 0, table.stderr
    assert "claim-" in table.stdout
    assert f"Wrote {tmp_path / 't' / 'claim.pem.crt'}" in " ".join(table.stdout.split())


def test_cert_create_claim_with_an_unknown_policy_writes_nothing(cloud: CloudProcess, tmp_path: Path) -> None:
    out = tmp_path / "claim"
    assert "NoSuchPolicy" in failed(
        cloud, "cert", "create-claim", "--policy", "NoSuchPolicy", "--out", str(out)
    )
    assert not out.exists()
    assert "validDays" in failed(
        cloud,
        "cert",
        "create-claim",
        "--policy",
        DEFAULT_DEVICE_POLICY_NAME,
        "--valid-days",
        "0",
        "--out",
        str(out),
    )
    assert not out.exists()


def test_template_pre_provisioning_hook_is_set_and_removed(cloud: CloudProcess, tmp_path: Path) -> None:
    hook = "http://127.0.0.1:9/allow"
    created = ok(
        cloud,
        "provisioning-template",
        "create",
        "hooked",
        "--template-body",
        body_file(tmp_path),
        "--pre-provisioning-hook",
        hook,
    )
    assert created["preProvisioningHook"]["targetUrl"] == hook
    table = run(cloud, "provisioning-template", "list")
    assert table.exit_code == 0, table.stderr
    assert hook in table.stdout
    assert "not both" in failed(
        cloud,
        "provisioning-template",
        "update",
        "hooked",
        "--pre-provisioning-hook",
        hook,
        "--remove-pre-provisioning-hook",
    )
    assert "targetUrl" in failed(
        cloud, "provisioning-template", "update", "hooked", "--pre-provisioning-hook", "ftp://nowhere"
    )
    removed = ok(cloud, "provisioning-template", "update", "hooked", "--remove-pre-provisioning-hook")
    assert removed["preProvisioningHook"] is None
