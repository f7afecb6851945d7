"""AWS-provided components in deployments: built-ins serve the versions of their major line that documents written
for older Greengrass releases pin; an AWS component Edgewise does not provide is refused when the deployment is
created, whether named or needed through a recipe's dependencies (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from edgewise.cloud.components import service as components
from edgewise.cloud.components.store import LocalArtifactStore
from edgewise.cloud.deployments.aws_components import check_aws_components
from edgewise.cloud.deployments.schemas import DeploymentCreate
from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.registry import service as registry

LOG_MANAGER = "aws.greengrass.DockerApplicationManager"
UNPROVIDED = "is an AWS-provided component that Edgewise does not provide"


def _recipe(name: str, version: str, dependencies: dict[str, str] | None = None) -> dict[str, Any]:
    """A recipe; ``dependencies`` maps names to requirements, ``SOFT:`` in front for a soft one."""
    recipe: dict[str, Any] = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": "echo hello"}}],
    }
    if dependencies:
        recipe["ComponentDependencies"] = {
            dependency: {
                "VersionRequirement": requirement.removeprefix("SOFT:"),
                "DependencyType": "SOFT" if requirement.startswith("SOFT:") else "HARD",
            }
            for dependency, requirement in dependencies.items()
        }
    return recipe


@pytest.fixture
def publish(session: Session, tmp_path: Path) -> Any:
    store = LocalArtifactStore(tmp_path / "artifacts")

    def publish(name: str, version: str, **dependencies: str) -> None:
        recipe = _recipe(
            name, version, {key.replace("__", "."): value for key, value in dependencies.items()}
        )
        components.publish_component(session, store, recipe=recipe, artifacts={}, published_by="test")

    registry.create_thing(session, "pump-1")
    return publish


def _request(**versions: str) -> DeploymentCreate:
    return DeploymentCreate.model_validate(
        {
            "targetArn": "pump-1",
            "components": {
                name.replace("__", "."): {"componentVersion": version} for name, version in versions.items()
            },
        }
    )


def _refused(session: Session, request: DeploymentCreate) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        check_aws_components(session, request.components)
    assert caught.value.field == "components"
    return caught.value.problem


def test_a_document_for_an_older_greengrass_pins_built_ins_the_device_serves(
    session: Session, publish: Any
) -> None:
    for version in ("2.0.0", "2.4.0", "2.12.0", "2.13.1"):
        check_aws_components(
            session, _request(aws__greengrass__Cli=version, aws__greengrass__Nucleus="2.5.6").components
        )


def test_a_built_in_at_another_major_version_is_refused_naming_the_request_and_what_is_served(
    session: Session, publish: Any
) -> None:
    problem = _refused(session, _request(aws__greengrass__Cli="3.0.0", aws__greengrass__Nucleus="1.9.0"))

    assert problem == (
        "the deployment needs aws.greengrass.Cli 3.0.0 (built in: 2.12.0, which serves major version 2 only); "
        "the deployment needs aws.greengrass.Nucleus 1.9.0 (built in: 2.12.0, which serves major version 2 only)"
    )


def test_an_aws_component_edgewise_does_not_provide_is_refused_naming_it(
    session: Session, publish: Any
) -> None:
    problem = _refused(session, _request(aws__greengrass__DockerApplicationManager="2.1.0"))

    assert problem.startswith(
        f"the deployment needs {LOG_MANAGER} 2.1.0, but {LOG_MANAGER} {UNPROVIDED} (built in: "
    )


@pytest.mark.parametrize("requirement", ["^2.0.0", "SOFT:^2.0.0"])
def test_a_component_that_depends_on_an_unprovided_aws_component_is_refused(
    session: Session, publish: Any, requirement: str
) -> None:
    publish("com.example.Exporter", "1.0.0", aws__greengrass__DockerApplicationManager=requirement)

    problem = _refused(session, _request(com__example__Exporter="1.0.0"))

    assert problem.startswith(
        f"com.example.Exporter 1.0.0 needs {LOG_MANAGER} ^2.0.0, but {LOG_MANAGER} {UNPROVIDED}"
    )


def test_a_dependency_on_a_built_in_of_another_major_version_is_refused(
    session: Session, publish: Any
) -> None:
    publish("com.example.Old", "1.0.0", aws__greengrass__Nucleus="^1.0.0")

    problem = _refused(session, _request(com__example__Old="1.0.0"))

    assert problem == (
        "com.example.Old 1.0.0 needs aws.greengrass.Nucleus ^1.0.0 "
        "(built in: 2.12.0, which serves major version 2 only)"
    )


def test_an_unprovided_aws_component_deep_in_the_dependencies_is_named_with_the_chain(
    session: Session, publish: Any
) -> None:
    publish("com.example.Lib", "1.0.0", aws__iot__SiteWiseEdgePublisher="^2.0.0")
    publish("com.example.Lib", "1.1.0", aws__iot__SiteWiseEdgePublisher="^2.0.0")
    publish("com.example.App", "1.0.0", com__example__Lib="^1.0.0")

    problem = _refused(session, _request(com__example__App="1.0.0"))

    assert problem.startswith(
        "com.example.App 1.0.0 needs com.example.Lib ^1.0.0, and com.example.Lib 1.1.0 needs "
        f"aws.iot.SiteWiseEdgePublisher ^2.0.0, but aws.iot.SiteWiseEdgePublisher {UNPROVIDED}"
    )


def test_a_dependency_with_a_version_that_does_without_the_aws_component_is_accepted(
    session: Session, publish: Any
) -> None:
    publish("com.example.Lib", "1.0.0")
    publish("com.example.Lib", "1.1.0", aws__greengrass__DockerApplicationManager="^2.0.0")
    publish("com.example.App", "1.0.0", com__example__Lib="^1.0.0")

    check_aws_components(session, _request(com__example__App="1.0.0").components)


def test_an_aws_named_component_published_to_the_registry_is_the_users_own(
    session: Session, publish: Any
) -> None:
    publish("aws.iot.CustomPublisher", "1.0.0")
    publish("com.example.App", "1.0.0", aws__iot__CustomPublisher="^1.0.0")

    check_aws_components(
        session, _request(com__example__App="1.0.0", aws__iot__CustomPublisher="1.0.0").components
    )


async def test_the_api_accepts_an_older_greengrass_document_and_refuses_unprovided_components(
    admin_api: httpx.AsyncClient, app: Any
) -> None:
    with app.state.services.sessions() as session:
        components.publish_component(
            session,
            app.state.services.artifact_store,
            recipe=_recipe("com.example.Exporter", "1.0.0", {LOG_MANAGER: "^2.0.0"}),
            artifacts={},
            published_by="test",
        )
        registry.create_thing(session, "pump-1")
    older = {
        "targetArn": "pump-1",
        "components": {
            "aws.greengrass.Cli": {"componentVersion": "2.4.0"},
            "aws.greengrass.Nucleus": {"componentVersion": "2.5.6"},
        },
    }

    created = await admin_api.post("/api/v1/deployments", json=older)
    exporter = await admin_api.post(
        "/api/v1/deployments",
        json={"targetArn": "pump-1", "components": {"com.example.Exporter": {"componentVersion": "1.0.0"}}},
    )
    newer_cli = await admin_api.post(
        "/api/v1/deployments",
        json={"targetArn": "pump-1", "components": {"aws.greengrass.Cli": {"componentVersion": "3.0.0"}}},
    )

    assert created.status_code == 201, created.text
    shown = (await admin_api.get(f"/api/v1/deployments/{created.json()['deploymentId']}")).json()
    assert shown["components"] == older["components"]
    assert exporter.status_code == 422
    assert exporter.json()["message"].startswith(
        f"Field 'components' is invalid: com.example.Exporter 1.0.0 needs {LOG_MANAGER} ^2.0.0, "
        f"but {LOG_MANAGER} {UNPROVIDED}"
    )
    assert newer_cli.status_code == 422
    assert "aws.greengrass.Cli 3.0.0 (built in: 2.12.0" in newer_cli.json()["message"]
    assert (await admin_api.get("/api/v1/deployments")).json()["count"] == 1
