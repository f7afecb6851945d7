"""The SecretManager configuration: sealing values, naming every bad field, never echoing a value."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from edgewise.runtime.secrets import (
    SecretStoreError,
    SecretVersion,
    name_from_arn,
    read_secrets,
    seal_secrets,
)

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"
API_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api/key-Zz9Yy8"
PLAINTEXT = "s3cr3t-plaintext-value"


class MemoryStore:
    """A stand-in for SecretStore's two callbacks, recording what was stored."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], bytes] = {}

    def put(self, version: SecretVersion, value: bytes) -> None:
        self.values[(version.arn, version.version_id, version.kind)] = value

    def contains(self, version: SecretVersion) -> bool:
        return (version.arn, version.version_id, version.kind) in self.values


def _seal(secrets: Any, store: MemoryStore | None = None) -> tuple[dict[str, Any], list[str]]:
    store = store or MemoryStore()
    return seal_secrets({"secrets": secrets, "other": 1}, store=store.put, stored=store.contains)


def test_values_are_stored_and_replaced_by_references() -> None:
    store = MemoryStore()
    binary = base64.b64encode(b"\x00\x01binary").decode()

    sealed, problems = _seal(
        [
            {"arn": ARN, "versionId": "v1", "secretString": PLAINTEXT},
            {"arn": API_ARN, "name": "api-key", "versionId": "b1", "secretBinary": binary},
        ],
        store,
    )

    assert problems == []
    assert store.values == {
        (ARN, "v1", "secretString"): PLAINTEXT.encode(),
        (API_ARN, "b1", "secretBinary"): b"\x00\x01binary",
    }
    assert sealed["other"] == 1
    assert sealed["secrets"][0] == {"arn": ARN, "versionId": "v1", "secretString": {"encrypted": True}}
    assert sealed["secrets"][1]["secretBinary"] == {"encrypted": True}
    assert PLAINTEXT not in json.dumps(sealed)


def test_sealed_configuration_reads_back_as_versions_with_default_stage_and_derived_name() -> None:
    sealed, _ = _seal([{"arn": ARN, "versionId": "v1", "secretString": PLAINTEXT}])

    versions, problems = read_secrets(sealed)

    assert problems == []
    assert versions == [SecretVersion(ARN, "db-password", "v1", ("AWSCURRENT",), "secretString")]


def test_a_reference_to_a_value_that_is_not_stored_is_a_problem() -> None:
    _, problems = _seal([{"arn": ARN, "versionId": "v1", "secretString": {"encrypted": True}}])

    assert problems == [
        f"secrets[0].secretString: no value is stored for version 'v1' of {ARN}; give the value again"
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"versionId": "v1", "secretString": PLAINTEXT}, "secrets[0].arn: required"),
        (
            {"arn": "arn:aws:s3:::bucket", "versionId": "v1", "secretString": PLAINTEXT},
            "secrets[0].arn: expected",
        ),
        ({"arn": ARN, "secretString": PLAINTEXT}, "secrets[0].versionId: required"),
        ({"arn": ARN, "versionId": "", "secretString": PLAINTEXT}, "secrets[0].versionId: required"),
        (
            {"arn": ARN, "versionId": "v1"},
            "secrets[0]: expected exactly one of secretString and secretBinary",
        ),
        (
            {"arn": ARN, "versionId": "v1", "secretString": PLAINTEXT, "secretBinary": "AA=="},
            "got secretString and secretBinary",
        ),
        ({"arn": ARN, "versionId": "v1", "secretString": 42}, "secrets[0].secretString: expected a string"),
        (
            {"arn": ARN, "versionId": "v1", "secretBinary": PLAINTEXT},
            "secrets[0].secretBinary: not valid base64",
        ),
        (
            {"arn": ARN, "versionId": "v1", "versionStages": "AWSCURRENT", "secretString": PLAINTEXT},
            "secrets[0].versionStages",
        ),
        ({"arn": ARN, "name": "bad name!", "versionId": "v1", "secretString": PLAINTEXT}, "secrets[0].name"),
        (PLAINTEXT, "secrets[0]: expected an object"),
    ],
)
def test_invalid_entries_name_the_field_and_lose_their_value(entry: Any, problem: str) -> None:
    store = MemoryStore()

    sealed, problems = _seal([entry], store)

    assert any(problem in text for text in problems), problems
    assert store.values == {}
    assert PLAINTEXT not in json.dumps(sealed)
    assert PLAINTEXT not in " ".join(problems)
    _, reread = read_secrets(sealed)
    assert any(problem in text for text in reread), "the problem must survive redaction"


def test_secrets_must_be_a_list() -> None:
    sealed, problems = _seal({"db": PLAINTEXT})

    assert problems == ["secrets: expected a list of secrets, got an object"]
    assert PLAINTEXT not in json.dumps(sealed)


def test_duplicate_versions_stages_and_names_are_problems() -> None:
    other_arn = ARN.replace("db-password", "db-password2")
    _, problems = _seal(
        [
            {"arn": ARN, "versionId": "v1", "secretString": "a"},
            {"arn": ARN, "versionId": "v1", "versionStages": ["AWSPREVIOUS"], "secretString": "a"},
            {"arn": ARN, "versionId": "v2", "secretString": "b"},
            {"arn": other_arn, "name": "db-password", "versionId": "v1", "secretString": "c"},
        ]
    )

    assert any("version 'v1'" in p and "secrets[0]" in p for p in problems)
    assert any("stage 'AWSCURRENT'" in p and "secrets[2]" in p for p in problems)
    assert any("secrets[3].name: 'db-password' already names" in p for p in problems)


def test_a_store_failure_becomes_a_problem_that_survives_redaction() -> None:
    def refuse(version: SecretVersion, value: bytes) -> None:
        raise SecretStoreError("disk full")

    sealed, problems = seal_secrets(
        {"secrets": [{"arn": ARN, "versionId": "v1", "secretString": PLAINTEXT}]},
        store=refuse,
        stored=lambda version: False,
    )

    assert problems == ["secrets[0]: disk full"]
    assert PLAINTEXT not in json.dumps(sealed)
    assert read_secrets(sealed) == ([], ["secrets[0]: disk full"])


def test_configuration_without_secrets_has_none() -> None:
    assert read_secrets(None) == ([], [])
    assert read_secrets({"cloudSecrets": []}) == ([], [])


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        (ARN, "db-password"),
        (API_ARN, "api/key"),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:short", "short"),
    ],
)
def test_name_is_derived_from_the_arn_without_the_random_suffix(arn: str, name: str) -> None:
    assert name_from_arn(arn) == name
