"""Secret values of a deployment (``aws.greengrass.SecretManager`` configuration) are sealed in the deployments
and jobs tables, shown to API tokens only as a redaction marker, and open only for the job they were sealed for
(SQLite, PostgreSQL; the device side is in tests/cloud/jobs/test_worker.py)."""

from __future__ import annotations

import base64
import copy
import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.orm import Session

from edgewise.cloud.app import FirstStart
from edgewise.cloud.auth import Role
from edgewise.cloud.auth import service as auth
from edgewise.cloud.deployments import service
from edgewise.cloud.deployments.models import Deployment
from edgewise.cloud.deployments.schemas import DeploymentCreate
from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.jobs import service as jobs
from edgewise.cloud.jobs.models import Job
from edgewise.cloud.jobs.schemas import JobCreate
from edgewise.cloud.jobs.secrets import KEY_FILE, REDACTED, SECRET_MANAGER, SecretSealer, SecretSealError
from edgewise.cloud.registry import service as registry
from tests.cloud.conftest import ApiClientFactory
from tests.cloud.jobs.conftest import SEALER

PASSWORD = "hunter2-correct-horse"
BINARY = base64.b64encode(b"\x00private key bytes\xff").decode()
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"
SECRETS_PATH = (SECRET_MANAGER, "configurationUpdate", "merge", "secrets")


def _secrets() -> list[dict[str, Any]]:
    return [
        {"arn": ARN, "versionId": "v1", "secretString": PASSWORD},
        {"arn": ARN.replace("db-password", "device-key"), "versionId": "k1", "secretBinary": BINARY},
    ]


def _body(target: str, secrets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "targetArn": target,
        "components": {
            SECRET_MANAGER: {
                "componentVersion": "2.12.0",
                "configurationUpdate": {"merge": {"secrets": _secrets() if secrets is None else secrets}},
            }
        },
    }


def _listed(components: dict[str, Any]) -> list[dict[str, Any]]:
    found: Any = components
    for key in SECRETS_PATH:
        found = found[key]
    assert isinstance(found, list)
    return found


@pytest.fixture
def pump(session: Session) -> Session:
    registry.create_thing(session, "pump-1")
    return session


def _stored_text(session: Session) -> str:
    rows = [
        *session.execute(sa.select(Deployment.components, Deployment.document)).all(),
        *session.execute(sa.select(Job.document)).all(),
    ]
    return json.dumps([list(row) for row in rows])


def test_secret_values_are_stored_sealed_in_the_deployment_and_its_job(pump: Session) -> None:
    request = DeploymentCreate.model_validate(_body("pump-1"))
    deployment = service.create_deployment(pump, request, sealer=SEALER)
    pump.expire_all()
    stored = _stored_text(pump)
    assert PASSWORD not in stored
    assert BINARY not in stored
    assert stored.count('"sealed": "AES-256-GCM"') == 6  # two values, in three documents
    job = jobs.get_job(pump, deployment.job_id)
    opened = SEALER.open(job.document, job_id=job.job_id)
    assert [
        entry.get("secretString", entry.get("secretBinary")) for entry in _listed(opened["components"])
    ] == [
        PASSWORD,
        BINARY,
    ]
    assert SEALER.open(deployment.document, job_id=deployment.deployment_id) == opened


def test_a_plain_job_carrying_secret_values_is_stored_sealed(pump: Session) -> None:
    document = {"components": _body("pump-1")["components"]}
    jobs.create_job(
        pump,
        JobCreate.model_validate({"jobId": "j1", "targets": ["pump-1"], "document": document}),
        sealer=SEALER,
    )
    pump.expire_all()
    assert PASSWORD not in _stored_text(pump)


@pytest.mark.parametrize(
    ("secrets", "field", "problem"),
    [
        ([{"arn": ARN, "versionId": "v1", "secretString": REDACTED}], "secrets[0].secretString", "marker"),
        (
            [{"arn": ARN, "versionId": "v1", "secretBinary": 42}],
            "secrets[0].secretBinary",
            "must be a string",
        ),
    ],
)
def test_a_redacted_or_malformed_value_is_refused_and_nothing_is_stored(
    pump: Session, secrets: list[dict[str, Any]], field: str, problem: str
) -> None:
    request = DeploymentCreate.model_validate(_body("pump-1", secrets))
    with pytest.raises(InvalidRequestError, match=problem) as caught:
        service.create_deployment(pump, request, sealer=SEALER)
    assert caught.value.field.endswith(field)
    pump.rollback()
    assert pump.scalar(sa.select(sa.func.count()).select_from(Deployment)) == 0
    assert pump.scalar(sa.select(sa.func.count()).select_from(Job)) == 0


def test_a_sealed_value_opens_only_for_its_job_and_under_its_key() -> None:
    document = {"components": _body("pump-1")["components"]}
    sealed = SEALER.seal(document, job_id="job-1")
    with pytest.raises(
        InvalidRequestError, match=r"secrets\[0\]\.secretString' is invalid: must be a string"
    ):
        SEALER.seal(sealed, job_id="job-1")
    with pytest.raises(SecretSealError, match="job 'job-2'"):
        SEALER.open(sealed, job_id="job-2")
    with pytest.raises(SecretSealError, match=r"secrets\[0\]\.secretString"):
        SecretSealer(bytes(32)).open(sealed, job_id="job-1")
    moved = copy.deepcopy(sealed)
    _listed(moved["components"])[0]["versionId"] = "v2"
    with pytest.raises(SecretSealError):
        SEALER.open(moved, job_id="job-1")
    assert SEALER.open(sealed, job_id="job-1") == document


def test_the_key_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = SecretSealer.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    sealed = first.seal({"components": _body("t")["components"]}, job_id="j")
    assert (
        _listed(SecretSealer.load_or_create(tmp_path).open(sealed, job_id="j")["components"])[0][
            "secretString"
        ]
        == PASSWORD
    )


async def test_the_api_shows_only_the_redaction_marker(
    app: FastAPI, admin_api: httpx.AsyncClient, api_client: ApiClientFactory, first_start: FirstStart
) -> None:
    with app.state.services.sessions() as session:
        registry.create_thing(session, "pump-1")
        reader = auth.create_token(session, "reader", role=Role.READ_ONLY).secret
    created = await admin_api.post("/api/v1/deployments", json=_body("pump-1"))
    assert created.status_code == 201, created.text
    deployment_id = created.json()["deploymentId"]
    async with api_client(reader) as viewer:
        answers = [
            await viewer.get("/api/v1/deployments"),
            await viewer.get(f"/api/v1/deployments/{deployment_id}"),
            await viewer.get(f"/api/v1/jobs/{created.json()['iotJobId']}"),
        ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert PASSWORD not in answer.text
        assert BINARY not in answer.text
        assert "AES-256-GCM" not in answer.text
    listed, one, job = (answer.json() for answer in answers)
    assert listed["data"][0] == one
    shown = _listed(one["components"])
    assert shown == [
        {"arn": ARN, "versionId": "v1", "secretString": REDACTED},
        {"arn": ARN.replace("db-password", "device-key"), "versionId": "k1", "secretBinary": REDACTED},
    ]
    assert _listed(job["document"]["components"]) == shown
