"""The fleet deployment document: what the cloud builds, the device parses into the same values."""

from __future__ import annotations

import contextlib
import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.cloud.deployments.schemas import DeploymentCreate
from edgewise.cloud.deployments.service import device_document
from edgewise.cloud.jobs import targets
from edgewise.protocol.deployment import (
    ComponentSpecification,
    ComponentUpdatePolicy,
    ConfigurationUpdate,
    ConfigurationValidationPolicy,
    DeploymentDocumentError,
    FleetDeploymentDocument,
    RunWith,
    SystemResourceLimits,
    build_document,
    configuration_arn,
    group_of_configuration_arn,
    parse_document,
    parse_resource_limits,
)
from edgewise.runtime.deployment import FailureHandlingPolicy, parse_fleet_deployment

ARN = "arn:aws:greengrass:edgewise:edgewise:configuration:thinggroup/sensors:7"
CREATED = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC)


def document(**changes: Any) -> dict[str, Any]:
    """A valid document with ``changes`` applied; a change to None removes the key."""
    body: dict[str, Any] = {
        "schemaDate": "2021-05-17",
        "deploymentId": "d-1",
        "deploymentName": "sensors",
        "configurationArn": ARN,
        "creationTimestamp": 1764100000000,
        "components": {"A": {"version": "1.0.0"}},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def component(**entry: Any) -> dict[str, Any]:
    """A document whose only component ``A`` is ``entry`` plus version 1.0.0."""
    return document(components={"A": {"version": "1.0.0", **entry}})


def problems(body: object) -> list[str]:
    with pytest.raises(DeploymentDocumentError) as caught:
        parse_document(body)
    return caught.value.problems


# -- what the cloud builds ---------------------------------------------------------------------------------


def test_the_cloud_writes_the_greengrass_document_key_by_key() -> None:
    built = build_document(
        FleetDeploymentDocument(
            schema_date="2021-05-17",
            deployment_id="d-1",
            deployment_name="",
            configuration_arn=configuration_arn("thing", "edge-1", 3),
            creation_timestamp=1767323045678,
            components={
                "A": ComponentSpecification(
                    version="1.0.0",
                    configuration_update=ConfigurationUpdate(merge={"interval": 1}, reset=("/old",)),
                    run_with=RunWith(posix_user="u:g", system_resource_limits=SystemResourceLimits(cpus=2.0)),
                ),
                "B": ComponentSpecification(version="2.0.0", configuration_update=ConfigurationUpdate()),
            },
            component_update_policy=ComponentUpdatePolicy(action="SKIP_NOTIFY_COMPONENTS", timeout=5),
            configuration_validation_policy=ConfigurationValidationPolicy(timeout=30),
        )
    )

    assert json.dumps(built) == (
        '{"schemaDate": "2021-05-17", "deploymentId": "d-1", "deploymentName": "", '
        '"configurationArn": "arn:aws:greengrass:edgewise:edgewise:configuration:thing/edge-1:3", '
        '"creationTimestamp": 1767323045678, "components": {"A": {"version": "1.0.0", '
        '"configurationUpdate": {"merge": {"interval": 1}, "reset": ["/old"]}, '
        '"runWith": {"posixUser": "u:g", "systemResourceLimits": {"cpus": 2.0}}}, '
        '"B": {"version": "2.0.0", "configurationUpdate": {}}}, "failureHandlingPolicy": "ROLLBACK", '
        '"componentUpdatePolicy": {"timeout": 5, "action": "SKIP_NOTIFY_COMPONENTS"}, '
        '"configurationValidationPolicy": {"timeout": 30}}'
    )


def test_what_the_cloud_deploys_is_what_the_device_applies() -> None:
    request = DeploymentCreate.model_validate(
        {
            "targetArn": "plant",
            "deploymentName": "plant rollout",
            "components": {
                "com.example.Hello": {
                    "componentVersion": "1.2.0",
                    "configurationUpdate": {"merge": json.dumps({"interval": 5}), "reset": ["/old"]},
                    "runWith": {"posixUser": "ggc_user:ggc_group", "systemResourceLimits": {"memory": 2048}},
                },
                "com.example.Quiet": {"componentVersion": "1.0.0", "runWith": {"posixUser": ""}},
                "com.example.Plain": {"componentVersion": "2.0.0", "configurationUpdate": {}},
            },
            "deploymentPolicies": {
                "failureHandlingPolicy": "DO_NOTHING",
                "componentUpdatePolicy": {"action": "SKIP_NOTIFY_COMPONENTS", "timeoutInSeconds": 15},
                "configurationValidationPolicy": {"timeoutInSeconds": 40},
            },
        }
    )
    sent = device_document(
        request, deployment_id="d-9", target=targets.Target("group", "plant"), revision=4, created=CREATED
    )

    applied = parse_fleet_deployment(json.loads(json.dumps(sent)))

    assert applied.deployment_id == "d-9"
    assert applied.group == "thinggroup/plant"
    assert (
        applied.configuration_arn == "arn:aws:greengrass:edgewise:edgewise:configuration:thinggroup/plant:4"
    )
    assert applied.created_ms == int(CREATED.timestamp() * 1000)
    assert applied.components_to_add == {
        "com.example.Hello": "1.2.0",
        "com.example.Quiet": "1.0.0",
        "com.example.Plain": "2.0.0",
    }
    assert set(applied.configuration) == {"com.example.Hello"}
    assert applied.configuration["com.example.Hello"].merge == {"interval": 5}
    assert applied.configuration["com.example.Hello"].reset == ("/old",)
    assert applied.posix_users == {"com.example.Hello": "ggc_user:ggc_group", "com.example.Quiet": None}
    assert applied.resource_limits == {"com.example.Hello": {"memory": 2048}, "com.example.Quiet": None}
    assert applied.failure_policy is FailureHandlingPolicy.DO_NOTHING
    assert (applied.notify_components, applied.update_timeout, applied.validation_timeout) == (
        False,
        15.0,
        40.0,
    )
    assert applied.replace_group_roots is True


# -- round trips -------------------------------------------------------------------------------------------

TEXT = st.text(max_size=20)
NAME = st.from_regex(r"[a-zA-Z0-9:_-]{1,20}", fullmatch=True)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=12,
)
POINTERS = st.lists(st.just("") | st.from_regex(r"/[a-z/~01]{0,10}", fullmatch=True), max_size=3).map(tuple)
SECONDS = st.integers(0, 2**31 - 1) | st.floats(0, 1e9)
COMPONENTS = st.dictionaries(
    st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True).filter(lambda name: name not in (".", "..")),
    st.builds(
        ComponentSpecification,
        version=st.tuples(*[st.integers(0, 99)] * 3).map(lambda parts: ".".join(map(str, parts))),
        configuration_update=st.none()
        | st.builds(
            ConfigurationUpdate, merge=st.none() | st.dictionaries(TEXT, JSON, max_size=3), reset=POINTERS
        ),
        run_with=st.none()
        | st.builds(
            RunWith,
            posix_user=st.none() | TEXT,
            windows_user=st.none() | TEXT,
            system_resource_limits=st.none()
            | st.builds(
                SystemResourceLimits,
                memory=st.none() | st.integers(1, 2**40),
                cpus=st.none() | st.floats(min_value=0.001, max_value=1024),
            ),
        ),
    ),
    max_size=4,
)
DOCUMENTS = st.builds(
    FleetDeploymentDocument,
    schema_date=st.none() | TEXT,
    deployment_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    deployment_name=st.none() | TEXT,
    configuration_arn=st.builds(
        configuration_arn, st.sampled_from(["thing", "thinggroup"]), NAME, st.integers(1, 10**6)
    ),
    creation_timestamp=st.integers(0, 2**53 - 1),
    on_behalf_of=st.none()
    | st.just("")
    | NAME
    | NAME.map("arn:aws:iot:edgewise:edgewise:thinggroup/{}".format),
    parent_target_arn=st.none() | TEXT,
    components=COMPONENTS,
    failure_handling_policy=st.sampled_from(["ROLLBACK", "DO_NOTHING"]),
    component_update_policy=st.builds(
        ComponentUpdatePolicy,
        action=st.sampled_from(["NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS"]),
        timeout=SECONDS,
    ),
    configuration_validation_policy=st.builds(ConfigurationValidationPolicy, timeout=SECONDS),
)


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS)
def test_every_document_built_parses_back_to_the_same_values(built: FleetDeploymentDocument) -> None:
    sent = json.loads(json.dumps(build_document(built)))

    assert parse_document(sent) == built
    assert build_document(parse_document(sent)) == sent


@settings(max_examples=100, deadline=None)
@given(DOCUMENTS)
def test_the_group_is_on_behalf_of_or_the_target_of_the_arn(built: FleetDeploymentDocument) -> None:
    group = parse_document(build_document(built)).group

    if built.on_behalf_of:
        assert group == f"thinggroup/{built.on_behalf_of.rsplit('/', 1)[-1]}"
    else:
        assert built.configuration_arn.endswith(
            f":configuration:{group}:{built.configuration_arn.rsplit(':', 1)[1]}"
        )


@pytest.mark.parametrize(
    ("kind", "name"), [("thing", "edge-1"), ("thinggroup", "a:b"), ("thinggroup", "x_1")]
)
def test_a_configuration_arn_names_its_target(kind: Any, name: str) -> None:
    assert group_of_configuration_arn(configuration_arn(kind, name, 12)) == f"{kind}/{name}"


def test_absent_keys_read_as_greengrass_defaults() -> None:
    parsed = parse_document(
        {"deploymentId": "d1", "configurationArn": ARN, "creationTimestamp": 0, "components": {}}
    )

    assert (parsed.schema_date, parsed.deployment_name, parsed.on_behalf_of) == (None, None, None)
    assert parsed.failure_handling_policy == "ROLLBACK"
    assert parsed.component_update_policy == ComponentUpdatePolicy(action="NOTIFY_COMPONENTS", timeout=60.0)
    assert parsed.configuration_validation_policy == ConfigurationValidationPolicy(timeout=20.0)


def test_a_null_posix_user_is_the_default_user_and_an_absent_one_no_change() -> None:
    parsed = parse_document(
        document(
            components={"A": {"version": "1.0.0", "runWith": {"posixUser": None}}, "B": {"version": "1.0.0"}}
        )
    )

    assert parsed.components["A"].run_with == RunWith(posix_user="")
    assert parsed.components["B"].run_with is None


def test_limits_are_read_as_whole_kb_and_fractional_cores() -> None:
    found: list[str] = []

    assert parse_resource_limits({"memory": 1024.0, "cpus": 2}, "x", found) == SystemResourceLimits(1024, 2.0)
    assert parse_resource_limits(None, "x", found) is None
    assert parse_resource_limits({}, "x", found) == SystemResourceLimits()
    assert found == []


# -- what the device refuses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([1, 2], "the deployment document: expected an object, got a list"),
        (document(deploymentId=None), "deploymentId: required"),
        (document(deploymentId=""), "deploymentId: expected a string of 1-2048 characters, got a string"),
        (document(schemaDate=5), "schemaDate: expected a string of 1-2048 characters, got int"),
        (
            document(creationTimestamp=2**53),
            "creationTimestamp: expected milliseconds since the epoch, got int",
        ),
        (document(onBehalfOf="a b"), "onBehalfOf: expected a thing group name or ARN, got 'a b'"),
        (
            document(requiredCapabilities="X"),
            "requiredCapabilities: expected a list of strings, got a string",
        ),
        (document(components=None), "components: expected an object of component names, got null"),
        (document(components={"A": "1.0.0"}), "components.A: expected an object with version, got a string"),
        (
            component(configurationUpdate=[]),
            "components.A.configurationUpdate: expected an object, got a list",
        ),
        (
            component(configurationUpdate={"reset": "/a"}),
            "components.A.configurationUpdate.reset: expected a list of JSON pointer strings, got a string",
        ),
        (
            component(configurationUpdate={"merge": {}, "replace": {}}),
            "components.A.configurationUpdate.replace: unknown key (expected one of merge, reset)",
        ),
        (component(runWith="root"), "components.A.runWith: expected an object, got a string"),
        (
            component(runWith={"user": "root"}),
            "components.A.runWith.user: unknown key (expected one of posixUser, systemResourceLimits, windowsUser)",
        ),
        (
            component(runWith={"systemResourceLimits": []}),
            "components.A.runWith.systemResourceLimits: expected an object, got a list",
        ),
        (
            component(runWith={"systemResourceLimits": {"memory": 1.5}}),
            "components.A.runWith.systemResourceLimits.memory: expected a positive whole number of KB, got 1.5",
        ),
        (
            component(runWith={"systemResourceLimits": {"cpus": 0}}),
            "components.A.runWith.systemResourceLimits.cpus: expected a positive number of cores, got 0",
        ),
        (
            component(runWith={"systemResourceLimits": {"swap": 1}}),
            "components.A.runWith.systemResourceLimits.swap: unknown key (expected one of cpus, memory)",
        ),
        (document(componentUpdatePolicy=[]), "componentUpdatePolicy: expected an object, got a list"),
        (
            document(configurationValidationPolicy={"timeout": 1, "action": "x"}),
            "configurationValidationPolicy.action: unknown key (expected one of timeout)",
        ),
        (
            {**document(), "failureHandlingPolicy": None},
            "failureHandlingPolicy: expected ROLLBACK or DO_NOTHING, got None",
        ),
    ],
)
def test_a_wrong_field_is_refused_by_its_path(body: object, expected: str) -> None:
    assert problems(body) == [expected]


def test_every_problem_is_listed_at_once_in_document_order() -> None:
    found = problems(
        {
            "extra": 1,
            "deploymentId": "../x",
            "configurationArn": "arn:aws:iot:r:a:thinggroup/x",
            "creationTimestamp": -1,
            "components": {"A": {"version": "one"}},
            "failureHandlingPolicy": "rollback",
        }
    )

    assert [problem.split(":", 1)[0] for problem in found] == [
        "extra",
        "deploymentId",
        "configurationArn",
        "creationTimestamp",
        "components.A.version",
        "failureHandlingPolicy",
    ]
    assert str(DeploymentDocumentError(found)) == "; ".join(found)


FIELD_NAMES = (
    "schemaDate",
    "deploymentId",
    "deploymentName",
    "configurationArn",
    "creationTimestamp",
    "onBehalfOf",
    "parentTargetArn",
    "requiredCapabilities",
    "components",
    "failureHandlingPolicy",
    "componentUpdatePolicy",
    "configurationValidationPolicy",
    "other",
)
ENTRY_FIELDS = st.sampled_from(["version", "configurationUpdate", "runWith", "other"])


@settings(max_examples=300, deadline=None)
@given(
    built=DOCUMENTS,
    replaced=st.dictionaries(st.sampled_from(FIELD_NAMES), JSON, max_size=3),
    entry=st.dictionaries(ENTRY_FIELDS, JSON, max_size=2),
)
def test_any_json_is_a_document_or_refused_with_field_paths(
    built: FleetDeploymentDocument, replaced: dict[str, Any], entry: dict[str, Any]
) -> None:
    body = {**build_document(built), **replaced}
    if isinstance(body.get("components"), dict):
        body["components"] = {**body["components"], "Z": {"version": "1.0.0", **entry}}
    try:
        parsed: FleetDeploymentDocument | DeploymentDocumentError = parse_document(body)
    except DeploymentDocumentError as exc:
        parsed = exc
    if isinstance(parsed, DeploymentDocumentError):
        assert parsed.problems
        for problem in parsed.problems:
            path, _, message = problem.partition(": ")
            assert message
            assert path.split(".")[0] in FIELD_NAMES
    else:
        assert build_document(parsed)["deploymentId"] == body["deploymentId"]
        assert parsed.group.startswith(("thing/", "thinggroup/"))


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_json_value_as_a_whole_document_is_handled(value: Any) -> None:
    with contextlib.suppress(DeploymentDocumentError):
        parse_document(value)
