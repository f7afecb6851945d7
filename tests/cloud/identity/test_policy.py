from __future__ import annotations

import json
from typing import Any

import pytest

from edgewise.cloud.identity import (
    Action,
    Effect,
    PolicyDocument,
    PolicyError,
    RequestContext,
    default_device_policy,
    evaluate,
    parse_policy,
    validate_policy,
)

ARN = "arn:aws:iot:us-east-1:123456789012"
SENSOR = RequestContext(client_id="sensor-1", thing_name="sensor-1")


def policy(*statements: dict[str, Any]) -> PolicyDocument:
    return validate_policy({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(action: str | list[str], resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


def problems(document: object) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        validate_policy(document)
    return [str(problem) for problem in caught.value.problems]


# --- parsing and validation ---------------------------------------------------------------------------


def test_parse_policy_reads_a_typical_aws_document() -> None:
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "connect", "Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/a"},
                {
                    "Effect": "Deny",
                    "Action": ["iot:Publish", "iot:receive", "iot:GetThingShadow"],
                    "Resource": [f"{ARN}:topic/x", "*"],
                },
            ],
        }
    )

    parsed = parse_policy(text)

    assert [statement.effect for statement in parsed.statements] == [Effect.ALLOW, Effect.DENY]
    assert parsed.statements[0].sid == "connect"
    # Action names are case-insensitive, as in IAM, and come back in AWS's spelling.
    assert parsed.statements[1].actions == ("iot:Publish", "iot:Receive", "iot:GetThingShadow")
    assert [resource.text for resource in parsed.statements[1].resources] == [f"{ARN}:topic/x", "*"]


def test_a_single_statement_object_is_accepted() -> None:
    parsed = validate_policy({"Version": "2012-10-17", "Statement": allow("iot:*", "*")})
    assert evaluate([parsed], Action.PUBLISH, "any/topic", SENSOR)


def test_to_document_reads_back_to_an_equal_policy() -> None:
    parsed = validate_policy(default_device_policy())
    assert validate_policy(json.loads(parsed.to_json())) == parsed


def test_unknown_action_is_reported_with_its_path() -> None:
    found = problems({"Version": "2012-10-17", "Statement": [allow(["iot:Connect", "iot:Fly"], "*")]})
    assert found == [
        "Statement[0].Action[1]: unknown action 'iot:Fly'; Edgewise decides iot:Connect, iot:Publish, "
        "iot:Subscribe, iot:Receive and iot:*"
    ]


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    found = problems(
        {
            "Version": "2008-10-17",
            "Extra": 1,
            "Statement": [
                {"Effect": "allow", "Action": [], "Resource": [f"{ARN}:topic/a", 7]},
                "not a statement",
                {"Effect": "Deny", "Action": "iot:Publish", "Resource": "*", "Condition": {}},
                {"Effect": "Allow", "Action": 3},
            ],
        }
    )
    assert found == [
        "unknown key 'Extra'; a policy has Version, Id and Statement",
        "Version: '2008-10-17' is not supported; use '2012-10-17'",
        "Statement[0].Effect: 'allow' is not an effect; use 'Allow' or 'Deny'",
        "Statement[0].Action: must hold at least one entry",
        "Statement[0].Resource[1]: must be a string, not a number",
        "Statement[1]: a statement must be an object, not a string",
        "Statement[2].Condition: is not supported by Edgewise",
        "Statement[3].Action: must be a string or a list of strings, not a number",
        "Statement[3].Resource: required",
    ]


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        ("topic/a", "'topic/a' is not an AWS IoT resource"),
        ("arn:aws:s3:::bucket/key", "is not an AWS IoT resource"),
        ("arn:aws:iot:*", "is not an AWS IoT resource"),
        ("arn:azure:iot:r:1:topic/a", "unknown partition 'azure'"),
        (f"{ARN}:topics/a", "unknown resource type 'topics'"),
        (f"{ARN}:topic", "names no topic; add '/<name>'"),
        (f"{ARN}:topic/${{iot:Nope}}", "unknown policy variable '${iot:Nope}'"),
        (f"{ARN}:topic/${{iot:ClientId", "'${' at position 6 is never closed"),
    ],
)
def test_bad_resources_are_reported_with_their_path(resource: str, problem: str) -> None:
    [found] = problems({"Version": "2012-10-17", "Statement": [allow("iot:Publish", ["*", resource])]})
    assert found.startswith("Statement[0].Resource[1]: ")
    assert problem in found


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "a policy document must be a JSON object, not a list"),
        ({"Statement": [allow("iot:*", "*")]}, "Version: required; use '2012-10-17'"),
        ({"Version": "2012-10-17"}, "Statement: required: a statement or a list of statements"),
        ({"Version": "2012-10-17", "Statement": []}, "Statement: must hold at least one statement"),
        ({"Version": "2012-10-17", "Statement": 5}, "Statement: must be an object or a list, not a number"),
    ],
)
def test_document_shape_problems(document: object, problem: str) -> None:
    assert problems(document) == [problem]


def test_invalid_json_and_duplicate_keys_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match="not valid JSON"):
        parse_policy("{")
    with pytest.raises(PolicyError, match="key 'Version' appears twice"):
        parse_policy('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}')


def test_documents_over_the_aws_size_limit_are_refused() -> None:
    resources = [f"{ARN}:topic/t{index:04d}" for index in range(60)]
    with pytest.raises(PolicyError, match="characters without whitespace; AWS IoT allows 2048"):
        policy(allow("iot:Publish", resources))


# --- evaluation ---------------------------------------------------------------------------------------


def test_nothing_is_allowed_by_default() -> None:
    assert not evaluate([], Action.CONNECT, "sensor-1", SENSOR)
    assert not evaluate([policy(allow("iot:Publish", f"{ARN}:topic/a"))], Action.RECEIVE, "a", SENSOR)


def test_explicit_deny_wins_over_allow_in_any_policy_and_order() -> None:
    allow_all = policy(allow("iot:*", "*"))
    deny_secret = policy(deny("iot:Publish", f"{ARN}:topic/secret/*"))

    for policies in ([allow_all, deny_secret], [deny_secret, allow_all]):
        assert evaluate(policies, Action.PUBLISH, "public/x", SENSOR)
        assert not evaluate(policies, Action.PUBLISH, "secret/x", SENSOR)
        assert evaluate(policies, Action.RECEIVE, "secret/x", SENSOR)


def test_star_matches_any_characters_including_slashes_and_nothing() -> None:
    rules = [policy(allow("iot:Publish", f"{ARN}:topic/a/*/z"))]
    assert evaluate(rules, Action.PUBLISH, "a/b/z", SENSOR)
    assert evaluate(rules, Action.PUBLISH, "a/b/c/d/z", SENSOR)
    assert evaluate(rules, Action.PUBLISH, "a//z", SENSOR)
    assert not evaluate(rules, Action.PUBLISH, "a/z", SENSOR)
    assert not evaluate(rules, Action.PUBLISH, "a/b/z/tail", SENSOR)


def test_question_mark_matches_exactly_one_character() -> None:
    rules = [policy(allow("iot:Publish", f"{ARN}:topic/room?"))]
    assert evaluate(rules, Action.PUBLISH, "room1", SENSOR)
    assert not evaluate(rules, Action.PUBLISH, "room", SENSOR)
    assert not evaluate(rules, Action.PUBLISH, "room12", SENSOR)


def test_mqtt_wildcards_in_topicfilter_resources_are_literal() -> None:
    rules = [policy(allow("iot:Subscribe", f"{ARN}:topicfilter/sensors/+/temperature"))]
    assert evaluate(rules, Action.SUBSCRIBE, "sensors/+/temperature", SENSOR)
    assert not evaluate(rules, Action.SUBSCRIBE, "sensors/kitchen/temperature", SENSOR)
    assert not evaluate(rules, Action.SUBSCRIBE, "sensors/#", SENSOR)


def test_subscribe_is_checked_against_topicfilter_not_topic_resources() -> None:
    rules = [policy(allow(["iot:Subscribe", "iot:Publish"], f"{ARN}:topic/a/b"))]
    assert evaluate(rules, Action.PUBLISH, "a/b", SENSOR)
    assert not evaluate(rules, Action.SUBSCRIBE, "a/b", SENSOR)


def test_wildcard_subscription_reaching_other_things_is_refused_by_a_star_policy() -> None:
    rules = [policy(allow("iot:Subscribe", f"{ARN}:topicfilter/dt/sensor-1/*"))]
    assert evaluate(rules, Action.SUBSCRIBE, "dt/sensor-1/#", SENSOR)
    assert evaluate(rules, Action.SUBSCRIBE, "dt/sensor-1/+/x", SENSOR)
    assert not evaluate(rules, Action.SUBSCRIBE, "dt/#", SENSOR)
    assert not evaluate(rules, Action.SUBSCRIBE, "dt/+/temperature", SENSOR)


def test_region_and_account_are_not_compared() -> None:
    rules = [policy(allow("iot:Connect", "arn:aws:iot:eu-west-1:999999999999:client/sensor-1"))]
    assert evaluate(rules, Action.CONNECT, "sensor-1", SENSOR)


def test_resource_star_alone_and_type_wildcards_cover_every_type() -> None:
    everything = [policy(allow("iot:*", f"{ARN}:*"))]
    topics_only = [policy(allow("iot:*", f"{ARN}:topic*"))]
    assert evaluate(everything, Action.CONNECT, "x", SENSOR)
    assert evaluate(topics_only, Action.SUBSCRIBE, "a/#", SENSOR)  # topicfilter/ starts with "topic"
    assert evaluate(topics_only, Action.PUBLISH, "a", SENSOR)
    assert not evaluate(topics_only, Action.CONNECT, "x", SENSOR)


def test_variables_expand_to_the_connected_thing() -> None:
    rules = [
        policy(
            allow("iot:Connect", f"{ARN}:client/${{iot:ClientId}}"),
            allow("iot:Publish", f"{ARN}:topic/dt/${{iot:Connection.Thing.ThingName}}/*"),
            allow("iot:Publish", f"{ARN}:topic/site/${{iot:Connection.Thing.Attributes[site]}}/*"),
            allow("iot:Publish", f"{ARN}:topic/type/${{iot:Connection.Thing.ThingTypeName}}"),
        )
    ]
    context = RequestContext(
        client_id="client-9",
        thing_name="sensor-1",
        thing_type_name="meter",
        thing_attributes={"site": "paris"},
    )
    assert evaluate(rules, Action.CONNECT, "client-9", context)
    assert evaluate(rules, Action.PUBLISH, "dt/sensor-1/t", context)
    assert not evaluate(rules, Action.PUBLISH, "dt/sensor-2/t", context)
    assert evaluate(rules, Action.PUBLISH, "site/paris/t", context)
    assert not evaluate(rules, Action.PUBLISH, "site/london/t", context)
    assert evaluate(rules, Action.PUBLISH, "type/meter", context)


def test_a_variable_without_value_matches_nothing() -> None:
    rules = [
        policy(
            allow("iot:Publish", f"{ARN}:topic/dt/${{iot:Connection.Thing.ThingName}}/*"),
            allow("iot:Publish", f"{ARN}:topic/site/${{iot:Connection.Thing.Attributes[site]}}"),
        )
    ]
    unattached = RequestContext(client_id="sensor-1")
    assert not evaluate(rules, Action.PUBLISH, "dt/sensor-1/t", unattached)
    assert not evaluate(rules, Action.PUBLISH, "dt//t", unattached)
    assert not evaluate(rules, Action.PUBLISH, "site/", SENSOR)


def test_substituted_values_are_literal_even_when_they_look_like_wildcards() -> None:
    rules = [policy(allow("iot:Publish", f"{ARN}:topic/dt/${{iot:ClientId}}/x"))]
    sneaky = RequestContext(client_id="*")
    assert evaluate(rules, Action.PUBLISH, "dt/*/x", sneaky)
    assert not evaluate(rules, Action.PUBLISH, "dt/sensor-2/x", sneaky)


def test_escapes_stand_for_literal_special_characters() -> None:
    rules = [policy(allow("iot:Publish", f"{ARN}:topic/a${{*}}b${{?}}c${{$}}"))]
    assert evaluate(rules, Action.PUBLISH, "a*b?c$", SENSOR)
    assert not evaluate(rules, Action.PUBLISH, "axbyc$", SENSOR)


def test_matching_a_long_topic_against_many_stars_stays_fast() -> None:
    rules = [policy(allow("iot:Publish", f"{ARN}:topic/" + "*a" * 40 + "*b"))]
    assert not evaluate(rules, Action.PUBLISH, "a" * 20_000, SENSOR)


# --- the default device policy --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_policy() -> list[PolicyDocument]:
    return [validate_policy(default_device_policy())]


def test_default_policy_connects_only_with_own_thing_name(default_policy: list[PolicyDocument]) -> None:
    assert evaluate(default_policy, Action.CONNECT, "sensor-1", SENSOR)
    impostor = RequestContext(client_id="sensor-2", thing_name="sensor-1")
    assert not evaluate(default_policy, Action.CONNECT, "sensor-2", impostor)


@pytest.mark.parametrize(
    "topic",
    [
        "$aws/things/sensor-1/shadow/update",
        "$aws/things/sensor-1/jobs/notify-next",
        "dt/sensor-1/temperature",
    ],
)
def test_default_policy_allows_own_topics(default_policy: list[PolicyDocument], topic: str) -> None:
    assert evaluate(default_policy, Action.PUBLISH, topic, SENSOR)
    assert evaluate(default_policy, Action.RECEIVE, topic, SENSOR)
    assert evaluate(default_policy, Action.SUBSCRIBE, topic, SENSOR)


@pytest.mark.parametrize(
    "topic",
    ["$aws/things/sensor-2/shadow/update", "dt/sensor-2/temperature", "dt/sensor-10/x", "other/topic"],
)
def test_default_policy_refuses_another_things_topics(
    default_policy: list[PolicyDocument], topic: str
) -> None:
    assert not evaluate(default_policy, Action.PUBLISH, topic, SENSOR)
    assert not evaluate(default_policy, Action.RECEIVE, topic, SENSOR)
    assert not evaluate(default_policy, Action.SUBSCRIBE, topic, SENSOR)


@pytest.mark.parametrize("topic_filter", ["#", "dt/#", "dt/+/temperature", "$aws/things/+/shadow/#"])
def test_default_policy_refuses_wildcard_subscriptions_reaching_other_things(
    default_policy: list[PolicyDocument], topic_filter: str
) -> None:
    assert not evaluate(default_policy, Action.SUBSCRIBE, topic_filter, SENSOR)


def test_default_policy_allows_wildcard_subscriptions_inside_own_topics(
    default_policy: list[PolicyDocument],
) -> None:
    assert evaluate(default_policy, Action.SUBSCRIBE, "$aws/things/sensor-1/shadow/get/+", SENSOR)
    assert evaluate(default_policy, Action.SUBSCRIBE, "dt/sensor-1/#", SENSOR)
