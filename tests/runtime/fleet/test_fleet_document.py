"""``parse_fleet_deployment``: the device-side deployment document of a deployment job (docs/device-protocol.md)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.protocol.deployment import group_of_configuration_arn
from edgewise.runtime.deployment import (
    DeploymentDocument,
    DocumentError,
    FailureHandlingPolicy,
    parse_fleet_deployment,
)

ARN = "arn:aws:greengrass:edgewise:edgewise:configuration:thinggroup/sensors:7"


def document(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaDate": "2021-05-17",
        "deploymentId": "0f9e8d7c-aaaa-bbbb-cccc-123456789abc",
        "deploymentName": "sensors rollout",
        "configurationArn": ARN,
        "creationTimestamp": 1764100000000,
        "components": {
            "com.example.Hello": {
                "version": "1.2.0",
                "configurationUpdate": {"merge": {"interval": 5, "tags": ["a"]}, "reset": ["/old"]},
                "runWith": {"posixUser": "ggc_user:ggc_group"},
            },
            "com.example.Lib": {"version": "2.0.0"},
        },
        "failureHandlingPolicy": "DO_NOTHING",
        "componentUpdatePolicy": {"timeout": 45, "action": "SKIP_NOTIFY_COMPONENTS"},
        "configurationValidationPolicy": {"timeout": 12},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def problems(body: object) -> list[str]:
    with pytest.raises(DocumentError) as caught:
        parse_fleet_deployment(body)
    return caught.value.problems


def test_a_full_document_becomes_a_deployment_that_replaces_its_groups_components() -> None:
    parsed = parse_fleet_deployment(document())

    assert parsed.deployment_id == "0f9e8d7c-aaaa-bbbb-cccc-123456789abc"
    assert parsed.group == "thinggroup/sensors"
    assert parsed.configuration_arn == ARN
    assert parsed.created_ms == 1764100000000
    assert parsed.components_to_add == {"com.example.Hello": "1.2.0", "com.example.Lib": "2.0.0"}
    assert parsed.components_to_remove == ()
    assert parsed.replace_group_roots is True
    hello = parsed.configuration["com.example.Hello"]
    assert hello.merge == {"interval": 5, "tags": ["a"]}
    assert hello.reset == ("/old",)
    assert "com.example.Lib" not in parsed.configuration
    assert parsed.posix_users == {"com.example.Hello": "ggc_user:ggc_group"}
    assert parsed.failure_policy is FailureHandlingPolicy.DO_NOTHING
    assert (parsed.notify_components, parsed.update_timeout, parsed.validation_timeout) == (False, 45.0, 12.0)


def test_defaults_follow_greengrass() -> None:
    parsed = parse_fleet_deployment(
        {"deploymentId": "d1", "configurationArn": ARN, "creationTimestamp": 0, "components": {}}
    )

    assert parsed.failure_policy is FailureHandlingPolicy.ROLLBACK
    assert parsed.notify_components is True
    assert parsed.update_timeout == 60.0
    assert parsed.validation_timeout == 20.0
    assert parsed.components_to_add == {}


def test_on_behalf_of_names_the_group_instead_of_the_arn() -> None:
    assert parse_fleet_deployment(document(onBehalfOf="parents")).group == "thinggroup/parents"
    arn = "arn:aws:iot:edgewise:edgewise:thinggroup/parents"
    assert parse_fleet_deployment(document(onBehalfOf=arn)).group == "thinggroup/parents"


@pytest.mark.parametrize(
    ("arn", "group"),
    [
        ("arn:aws:greengrass:r:a:configuration:thing/edge-1:3", "thing/edge-1"),
        ("arn:aws:greengrass:r:a:configuration:thinggroup/a:b:12", "thinggroup/a:b"),
        ("arn:aws:greengrass:r:a:configuration:thinggroup/plain", "thinggroup/plain"),
    ],
)
def test_the_group_is_the_target_of_the_configuration_arn(arn: str, group: str) -> None:
    assert group_of_configuration_arn(arn) == group


def test_the_document_survives_persistence() -> None:
    parsed = parse_fleet_deployment(document())

    assert DeploymentDocument.from_json(json.loads(json.dumps(parsed.to_json()))) == parsed


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"deploymentId": None}, "deploymentId: required"),
        ({"deploymentId": "../../etc/passwd"}, "deploymentId: expected 1-128 letters"),
        ({"configurationArn": None}, "configurationArn: required"),
        ({"configurationArn": "arn:aws:iot:r:a:thinggroup/x"}, "configurationArn: expected arn:"),
        ({"configurationArn": ARN.replace("thinggroup", "group")}, "configurationArn: the target must be"),
        ({"creationTimestamp": "yesterday"}, "creationTimestamp: expected milliseconds"),
        ({"creationTimestamp": True}, "creationTimestamp: expected milliseconds"),
        ({"components": ["com.example.Hello"]}, "components: expected an object"),
        ({"components": {"../x": {"version": "1.0.0"}}}, "components: '../x' is not a component name"),
        ({"components": {"A": {"version": "one"}}}, "components.A.version: Version 'one'"),
        ({"components": {"A": {}}}, "components.A.version: expected a version string"),
        ({"components": {"A": {"version": "1.0.0", "extra": 1}}}, "components.A.extra: unknown key"),
        (
            {"components": {"A": {"version": "1.0.0", "configurationUpdate": {"merge": "{}"}}}},
            "components.A.configurationUpdate.merge: expected an object",
        ),
        (
            {"components": {"A": {"version": "1.0.0", "configurationUpdate": {"reset": ["no-slash"]}}}},
            "components.A.configurationUpdate.reset[0]: 'no-slash' is not a JSON pointer",
        ),
        (
            {"components": {"A": {"version": "1.0.0", "runWith": {"posixUser": 0}}}},
            "components.A.runWith.posixUser: expected a string",
        ),
        ({"failureHandlingPolicy": "rollback"}, "failureHandlingPolicy: expected ROLLBACK or DO_NOTHING"),
        ({"componentUpdatePolicy": {"action": "LATER"}}, "componentUpdatePolicy.action: expected"),
        ({"componentUpdatePolicy": {"timeout": -1}}, "componentUpdatePolicy.timeout: expected a number"),
        (
            {"configurationValidationPolicy": {"timeout": float("inf")}},
            "configurationValidationPolicy.timeout",
        ),
        (
            {"requiredCapabilities": ["LARGE_CONFIGURATION"]},
            "requiredCapabilities: this runtime does not support",
        ),
        ({"deploymentType": "x"}, "deploymentType: unknown key"),
    ],
)
def test_every_wrong_field_is_named(changes: dict[str, Any], expected: str) -> None:
    body = document()
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value

    assert any(problem.startswith(expected) for problem in problems(body)), problems(body)


def test_all_problems_are_reported_at_once() -> None:
    found = problems({"deploymentId": 5, "components": {"A": {"version": "x"}}, "failureHandlingPolicy": 1})

    assert len(found) >= 5


def test_a_document_that_is_not_an_object_is_refused() -> None:
    assert problems([1, 2]) == ["the deployment document: expected an object, got a list"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
FIELDS = st.sampled_from(
    [
        "deploymentId",
        "configurationArn",
        "creationTimestamp",
        "onBehalfOf",
        "components",
        "failureHandlingPolicy",
        "componentUpdatePolicy",
        "configurationValidationPolicy",
        "requiredCapabilities",
        "deploymentName",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.just(document()),
    replaced=st.dictionaries(FIELDS, JSON, max_size=4),
)
def test_any_json_is_a_deployment_or_a_document_error(base: dict[str, Any], replaced: dict[str, Any]) -> None:
    body = {**base, **replaced}
    try:
        parsed: DeploymentDocument | DocumentError = parse_fleet_deployment(body)
    except DocumentError as exc:
        parsed = exc
    if isinstance(parsed, DocumentError):
        assert parsed.problems
        assert all(isinstance(problem, str) and problem for problem in parsed.problems)
    else:
        assert parsed.group.startswith(("thing/", "thinggroup/"))
        assert "/" not in parsed.deployment_id


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_json_value_as_a_whole_document_is_handled(value: Any) -> None:
    with contextlib.suppress(DocumentError):
        parse_fleet_deployment(value)
