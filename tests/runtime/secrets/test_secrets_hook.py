"""The deployment hook and the vault: values leave deployments sealed and come back only through lookups."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from edgewise.runtime.deployment import ConfigurationUpdate, DeploymentDocument, DeploymentError
from edgewise.runtime.secrets import (
    SECRET_MANAGER,
    SecretNotFoundError,
    SecretsHook,
    SecretStore,
    SecretVault,
)

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"
CURRENT, PREVIOUS = "current-plaintext-1", "previous-plaintext-0"
SECRETS: list[dict[str, Any]] = [
    {"arn": ARN, "versionId": "v2", "versionStages": ["AWSCURRENT"], "secretString": CURRENT},
    {"arn": ARN, "versionId": "v1", "versionStages": ["AWSPREVIOUS"], "secretString": PREVIOUS},
    {
        "arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cert-Qq1Ww2",
        "versionId": "c1",
        "secretBinary": base64.b64encode(b"\x00binary\xff").decode(),
    },
]


def _document(secrets: Any) -> DeploymentDocument:
    return DeploymentDocument(
        deployment_id="d-1",
        components_to_add={SECRET_MANAGER: "2.12.0"},
        configuration={SECRET_MANAGER: ConfigurationUpdate(merge={"secrets": secrets})},
    )


def _planned(configuration: dict[str, Any]) -> dict[str, Any]:
    return {"services": {SECRET_MANAGER: {"version": "2.12.0", "configuration": configuration}}, "groups": {}}


@pytest.fixture
def store(tmp_path: Path) -> SecretStore:
    return SecretStore.open(tmp_path / "secrets")


def _sealed_tree(store: SecretStore) -> dict[str, Any]:
    hook = SecretsHook(store)
    document = hook.redact(_document(SECRETS))
    merge = document.configuration[SECRET_MANAGER].merge
    assert merge is not None
    return hook.prepare(document, _planned(dict(merge)))


def test_redact_seals_the_merge_so_the_persisted_document_holds_no_plaintext(store: SecretStore) -> None:
    redacted = SecretsHook(store).redact(_document(SECRETS))

    persisted = json.dumps(redacted.to_json())
    assert CURRENT not in persisted
    assert PREVIOUS not in persisted
    assert base64.b64encode(b"\x00binary\xff").decode() not in persisted
    assert redacted.deployment_id == "d-1"


def test_prepare_seals_values_still_in_clear_in_the_planned_tree(store: SecretStore) -> None:
    planned = SecretsHook(store).prepare(_document([]), _planned({"secrets": SECRETS, "keep": "me"}))

    configuration = planned["services"][SECRET_MANAGER]["configuration"]
    assert configuration["keep"] == "me"
    assert CURRENT not in json.dumps(planned)
    assert configuration["secrets"][0]["secretString"] == {"encrypted": True}


def test_prepare_rejects_an_invalid_configuration_naming_the_field_not_the_value(store: SecretStore) -> None:
    hook = SecretsHook(store)
    bad = [{"arn": ARN, "secretString": CURRENT}]

    with pytest.raises(DeploymentError) as caught:
        hook.prepare(_document(bad), _planned({"secrets": bad}))

    assert "secrets[0].versionId" in str(caught.value)
    assert CURRENT not in str(caught.value)


def test_prepare_after_redact_still_reports_the_problem_of_an_invalid_entry(store: SecretStore) -> None:
    hook = SecretsHook(store)
    redacted = hook.redact(_document([{"arn": ARN, "versionId": "v1", "secretBinary": "not base64!"}]))
    merge = redacted.configuration[SECRET_MANAGER].merge
    assert merge is not None

    with pytest.raises(DeploymentError, match=r"secrets\[0\]\.secretBinary: not valid base64"):
        hook.prepare(redacted, _planned(dict(merge)))


def test_a_new_value_for_a_deployed_version_fails_the_deployment(store: SecretStore) -> None:
    _sealed_tree(store)
    hook = SecretsHook(store)
    changed = [{**SECRETS[0], "secretString": "changed-plaintext"}]
    redacted = hook.redact(_document(changed))
    merge = redacted.configuration[SECRET_MANAGER].merge
    assert merge is not None

    with pytest.raises(DeploymentError, match="immutable") as caught:
        hook.prepare(redacted, _planned(dict(merge)))

    assert "changed-plaintext" not in json.dumps(redacted.to_json()) + str(caught.value)


def test_prepare_leaves_trees_without_secrets_alone(store: SecretStore) -> None:
    planned = {"services": {"com.example.App": {"configuration": {"secrets": "not ours"}}}, "groups": {}}

    assert SecretsHook(store).prepare(_document([]), planned) is planned


def test_vault_finds_versions_by_arn_name_stage_and_id(store: SecretStore) -> None:
    tree = _sealed_tree(store)
    vault = SecretVault(store, lambda: tree["services"][SECRET_MANAGER]["configuration"])

    by_name = vault.get("db-password")
    by_arn = vault.get(ARN)
    previous = vault.get("db-password", version_stage="AWSPREVIOUS")
    by_id = vault.get(ARN, version_id="v1")
    binary = vault.get("cert")

    assert (by_name.version.version_id, by_name.value) == ("v2", CURRENT.encode())
    assert by_arn == by_name
    assert previous.value == PREVIOUS.encode()
    assert by_id.value == PREVIOUS.encode()
    assert binary.version.kind == "secretBinary"
    assert binary.value == b"\x00binary\xff"


@pytest.mark.parametrize(
    ("secret_id", "options", "message"),
    [
        ("unknown", {}, "'unknown' is not on this device"),
        ("db-password", {"version_id": "v9"}, "no version with id 'v9'"),
        ("db-password", {"version_stage": "AWSPENDING"}, "no version with stage 'AWSPENDING'"),
        (
            "db-password",
            {"version_id": "v1", "version_stage": "AWSCURRENT"},
            "id 'v1' and stage 'AWSCURRENT'",
        ),
    ],
)
def test_vault_reports_what_is_missing(
    store: SecretStore, secret_id: str, options: dict[str, str], message: str
) -> None:
    tree = _sealed_tree(store)
    vault = SecretVault(store, lambda: tree["services"][SECRET_MANAGER]["configuration"])

    with pytest.raises(SecretNotFoundError, match=message):
        vault.get(secret_id, **options)


def test_vault_follows_the_current_configuration(store: SecretStore) -> None:
    configuration: dict[str, Any] = {}
    vault = SecretVault(store, lambda: configuration)
    assert vault.versions("db-password") == []

    configuration.update(_sealed_tree(store)["services"][SECRET_MANAGER]["configuration"])

    assert [version.version_id for version in vault.versions("db-password")] == ["v2", "v1"]
