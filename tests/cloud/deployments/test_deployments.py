"""Deployments: Greengrass CreateDeployment requests become revisions of their target carried by jobs in the
``aws-gg-deployment`` namespace; a new one replaces the old; bad requests change nothing (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgewise.cloud.components import service as components
from edgewise.cloud.components.store import LocalArtifactStore
from edgewise.cloud.deployments import service
from edgewise.cloud.deployments.models import Deployment
from edgewise.cloud.deployments.schemas import DeploymentCreate
from edgewise.cloud.errors import CloudConflictError, InvalidRequestError, NotFoundError
from edgewise.cloud.jobs import service as jobs
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobStatus, TargetSelection
from edgewise.cloud.registry import service as registry
from tests.cloud.jobs.conftest import SEALER


def _recipe(name: str, version: str) -> dict[str, Any]:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": {"interval": 5}},
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": "echo hello"}}],
    }


@pytest.fixture
def fleet(session: Session, tmp_path: Path) -> Session:
    """Three things in group ``plant``, one outside it, and com.example.Hello 1.0.0 and 1.1.0 published."""
    store = LocalArtifactStore(tmp_path / "artifacts")
    for version in ("1.0.0", "1.1.0"):
        components.publish_component(
            session, store, recipe=_recipe("com.example.Hello", version), artifacts={}, published_by="test"
        )
    registry.create_group(session, "plant")
    for name in ("a", "b", "c", "lonely"):
        registry.create_thing(session, name)
    for name in ("a", "b", "c"):
        registry.add_thing_to_group(session, "plant", name)
    return session


def _request(target: str = "plant", version: str = "1.0.0", **fields: Any) -> DeploymentCreate:
    body: dict[str, Any] = {
        "targetArn": target,
        "deploymentName": "hello",
        "components": {
            "com.example.Hello": {
                "componentVersion": version,
                "configurationUpdate": {"merge": json.dumps({"interval": 1}), "reset": ["/old"]},
                "runWith": {"posixUser": "ggc_user:ggc_group"},
            },
            "aws.greengrass.Nucleus": {"componentVersion": "2.12.0"},
        },
        **fields,
    }
    return DeploymentCreate.model_validate(body)


def _huge_request() -> DeploymentCreate:
    """A deployment whose device document is larger than a job document may be (32 KiB)."""
    hello = {
        "componentVersion": "1.0.0",
        "configurationUpdate": {"merge": json.dumps({"blob": "x" * 40_000})},
    }
    return DeploymentCreate.model_validate({"targetArn": "plant", "components": {"com.example.Hello": hello}})


def _job(session: Session, deployment: Deployment) -> Job:
    return jobs.get_job(session, deployment.job_id)


def test_a_group_deployment_is_a_continuous_namespaced_job_carrying_the_device_document(
    fleet: Session,
) -> None:
    deployment = service.create_deployment(fleet, _request(), sealer=SEALER)
    job = _job(fleet, deployment)
    assert job.namespace_id == "aws-gg-deployment"
    assert job.target_selection is TargetSelection.CONTINUOUS
    document = job.document
    assert document["deploymentId"] == deployment.deployment_id
    assert document["configurationArn"].endswith(":configuration:thinggroup/plant:1")
    assert document["components"]["com.example.Hello"] == {
        "version": "1.0.0",
        "configurationUpdate": {"merge": {"interval": 1}, "reset": ["/old"]},
        "runWith": {"posixUser": "ggc_user:ggc_group"},
    }
    assert document["failureHandlingPolicy"] == "ROLLBACK"
    assert document["componentUpdatePolicy"] == {"timeout": 60, "action": "NOTIFY_COMPONENTS"}
    assert document["configurationValidationPolicy"] == {"timeout": 30}
    assert isinstance(document["creationTimestamp"], int)
    executions = service.device_executions(fleet, deployment.deployment_id).items
    assert sorted(execution.thing_name for execution in executions) == ["a", "b", "c"]
    progress = service.progress(fleet, deployment)
    assert progress.status == "ACTIVE"
    assert progress.counts == {"QUEUED": 3}


def test_a_thing_deployment_is_a_snapshot_job(fleet: Session) -> None:
    deployment = service.create_deployment(
        fleet, _request(target="arn:aws:iot:us-east-1:123:thing/lonely"), sealer=SEALER
    )
    assert _job(fleet, deployment).target_selection is TargetSelection.SNAPSHOT
    assert deployment.document["configurationArn"].endswith(":configuration:thing/lonely:1")
    assert [e.thing_name for e in service.device_executions(fleet, deployment.deployment_id).items] == [
        "lonely"
    ]


def test_a_new_deployment_replaces_the_targets_previous_one(fleet: Session) -> None:
    first = service.create_deployment(fleet, _request(), sealer=SEALER)
    second = service.create_deployment(fleet, _request(version="1.1.0"), sealer=SEALER)
    assert second.revision == 2
    assert second.document["configurationArn"].endswith("thinggroup/plant:2")
    fleet.refresh(first)
    assert not first.is_latest_for_target
    assert service.progress(fleet, first).status == "INACTIVE"
    assert _job(fleet, first).status is JobStatus.CANCELED
    assert {e.status for e in service.device_executions(fleet, first.deployment_id).items} == {
        ExecutionStatus.CANCELED
    }
    latest = service.list_deployments(fleet, target="plant", latest_only=True).items
    assert [d.deployment_id for d in latest] == [second.deployment_id]
    assert service.list_deployments(fleet).total == 2


def test_cancel_stops_the_rollout_and_cannot_be_repeated(fleet: Session) -> None:
    deployment = service.create_deployment(fleet, _request(), sealer=SEALER)
    service.cancel_deployment(fleet, deployment.deployment_id)
    assert service.progress(fleet, deployment).status == "CANCELED"
    assert service.progress(fleet, deployment).counts == {"CANCELED": 3}
    with pytest.raises(CloudConflictError, match="CANCELED"):
        service.cancel_deployment(fleet, deployment.deployment_id)


@pytest.mark.parametrize(
    ("request_", "error", "field"),
    [
        (
            lambda: _request(version="9.9.9"),
            InvalidRequestError,
            "components.com.example.Hello.componentVersion",
        ),
        (lambda: _request(version="not-semver"), InvalidRequestError, "components.com.example.Hello"),
        (lambda: _request(target="nowhere"), NotFoundError, "nowhere"),
        (lambda: _huge_request(), InvalidRequestError, "components"),
        (lambda: _request(target="arn:aws:iot:x:y:policy/p"), InvalidRequestError, "targetArn"),
    ],
)
def test_a_bad_request_names_the_problem_and_stores_nothing(
    fleet: Session, request_: Any, error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field.replace(".", r"\.")):
        service.create_deployment(fleet, request_(), sealer=SEALER)
    fleet.rollback()
    assert fleet.scalar(sa.select(sa.func.count()).select_from(Deployment)) == 0
    assert fleet.scalar(sa.select(sa.func.count()).select_from(Job)) == 0


def test_a_component_version_an_active_deployment_uses_cannot_be_deleted(
    fleet: Session, tmp_path: Path
) -> None:
    deployment = service.create_deployment(fleet, _request(), sealer=SEALER)
    store = LocalArtifactStore(tmp_path / "artifacts")
    with pytest.raises(CloudConflictError, match=deployment.deployment_id):
        components.delete_component_version(fleet, store, "com.example.Hello", "1.0.0")
    service.cancel_deployment(fleet, deployment.deployment_id)
    components.delete_component_version(fleet, store, "com.example.Hello", "1.0.0")


async def test_the_api_takes_greengrass_json_and_names_bad_fields(
    admin_api: httpx.AsyncClient, app: Any
) -> None:
    with app.state.services.sessions() as session:
        components.publish_component(
            session,
            app.state.services.artifact_store,
            recipe=_recipe("com.example.Hello", "1.0.0"),
            artifacts={},
            published_by="test",
        )
        registry.create_thing(session, "pump-1")
    body = {
        "targetArn": "arn:aws:iot:eu-west-1:123456789012:thing/pump-1",
        "deploymentName": "first",
        "components": {
            "com.example.Hello": {
                "componentVersion": "1.0.0",
                "configurationUpdate": {"merge": '{"interval": 2}'},
            }
        },
        "deploymentPolicies": {
            "failureHandlingPolicy": "DO_NOTHING",
            "componentUpdatePolicy": {"action": "SKIP_NOTIFY_COMPONENTS", "timeoutInSeconds": 5},
        },
        "iotJobConfiguration": {
            "jobExecutionsRolloutConfig": {"maximumPerMinute": 10},
            "timeoutConfig": {"inProgressTimeoutInMinutes": 5},
            "jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]},
        },
    }
    created = await admin_api.post("/api/v1/deployments", json=body)
    assert created.status_code == 201, created.text
    deployment_id = created.json()["deploymentId"]
    assert created.json()["iotJobId"] == deployment_id

    shown = (await admin_api.get(f"/api/v1/deployments/{deployment_id}")).json()
    assert shown["deploymentStatus"] == "ACTIVE"
    assert shown["targetArn"].endswith(":thing/pump-1")
    assert shown["revisionId"] == "1"
    assert shown["executionCounts"] == {"QUEUED": 1}
    with app.state.services.sessions() as session:
        job = jobs.get_job(session, deployment_id)
        assert job.rollout_config == {"maximumPerMinute": 10}
        assert job.in_progress_timeout_minutes == 5
        assert job.retry_config == {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]}
    devices = (await admin_api.get(f"/api/v1/deployments/{deployment_id}/devices")).json()
    assert [(d["thingName"], d["status"]) for d in devices["data"]] == [("pump-1", "QUEUED")]
    listed = (await admin_api.get("/api/v1/deployments", params={"targetArn": "pump-1"})).json()
    assert listed["count"] == 1

    bad = await admin_api.post(
        "/api/v1/deployments", json={**body, "deploymentPolicies": {"failureHandlingPolicy": "RETRY"}}
    )
    assert bad.status_code == 422
    assert "failureHandlingPolicy" in bad.json()["message"]
    bad_merge = await admin_api.post(
        "/api/v1/deployments",
        json={
            **body,
            "components": {
                "com.example.Hello": {"componentVersion": "1.0.0", "configurationUpdate": {"merge": "{"}}
            },
        },
    )
    assert bad_merge.status_code == 422
    assert "merge" in bad_merge.json()["message"]
    missing = await admin_api.get("/api/v1/deployments/no-such-deployment")
    assert missing.status_code == 404
    assert (await admin_api.get("/api/v1/deployments")).json()["count"] == 1

    cancelled = await admin_api.post(f"/api/v1/deployments/{deployment_id}/cancel")
    assert cancelled.json()["deploymentStatus"] == "CANCELED"
    again = await admin_api.post(f"/api/v1/deployments/{deployment_id}/cancel")
    assert again.status_code == 409


@pytest.mark.parametrize(("key", "value"), [("memory", 0), ("cpus", 0), ("cpus", -0.5), ("memory", -1)])
def test_resource_limits_the_device_would_refuse_are_refused_at_creation(key: str, value: float) -> None:
    body = {
        "targetArn": "plant",
        "components": {
            "com.example.Hello": {
                "componentVersion": "1.0.0",
                "runWith": {"systemResourceLimits": {key: value}},
            }
        },
    }
    with pytest.raises(ValidationError) as caught:
        DeploymentCreate.model_validate(body)
    [error] = caught.value.errors()
    assert error["loc"][-2:] == ("systemResourceLimits", key)
