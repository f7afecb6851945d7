from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.cloud.identity import (
    Action,
    PolicyDocument,
    RequestContext,
    ThingPermissions,
    TopicRule,
    default_device_policy,
    evaluate,
    render_for_thing,
    validate_policy,
)
from edgewise.topics import TopicError, filter_matches, validate_filter, validate_topic

ARN = "arn:aws:iot:*:*"
THING = "t1"


def policy(*statements: dict[str, Any]) -> PolicyDocument:
    return validate_policy({"Version": "2012-10-17", "Statement": list(statements)})


def statement(effect: str, action: str | list[str], *resources: str) -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": list(resources)}


def within(pattern: str, topic_filter: str) -> bool:
    """Whether a pattern ACL covers a subscription filter, the way Mosquitto checks subscriptions."""
    if pattern.startswith(("+", "#")) and topic_filter.startswith("$"):
        return False
    pattern_levels, filter_levels = pattern.split("/"), topic_filter.split("/")
    for index, level in enumerate(pattern_levels):
        if level == "#":
            return True
        if index >= len(filter_levels):
            return False
        if level == "+":
            if filter_levels[index] == "#":
                return False
        elif level != filter_levels[index]:
            return False
    return len(filter_levels) == len(pattern_levels)


def rule_covers(rule: TopicRule, name: str) -> bool:
    if rule.action is Action.SUBSCRIBE:
        return rule.topic_filter == name if rule.literal else within(rule.topic_filter, name)
    return filter_matches(rule.topic_filter, name)


def usable(action: Action, name: str) -> bool:
    try:
        if action is Action.SUBSCRIBE:
            validate_filter(name)
        else:
            validate_topic(name)
    except TopicError:
        return False
    return True


def broker_allows(permissions: ThingPermissions, action: Action, name: str) -> bool:
    """What a broker enforcing the rendered rules decides (deny wins)."""
    if any(rule.action is action and rule_covers(rule, name) for rule in permissions.deny):
        return False
    return any(rule.action is action and rule_covers(rule, name) for rule in permissions.allow)


def test_default_policy_renders_own_topics_for_the_thing() -> None:
    permissions = render_for_thing([validate_policy(default_device_policy())], "sensor-1")

    assert permissions.can_connect
    assert permissions.narrowed == ()
    for action in (Action.PUBLISH, Action.RECEIVE, Action.SUBSCRIBE):
        assert TopicRule(action, "$aws/things/sensor-1/#") in permissions.allow
        assert TopicRule(action, "dt/sensor-1/#") in permissions.allow
    assert {rule.topic_filter for rule in permissions.allow} == {"$aws/things/sensor-1/#", "dt/sensor-1/#"}
    # 'dt/sensor-1/#' also covers 'dt/sensor-1' itself, which 'dt/sensor-1/*' does not allow.
    assert TopicRule(Action.PUBLISH, "dt/sensor-1") in permissions.deny
    assert TopicRule(Action.SUBSCRIBE, "dt/sensor-1", literal=True) in permissions.deny


def test_default_policy_rendering_refuses_other_things_at_the_broker() -> None:
    permissions = render_for_thing([validate_policy(default_device_policy())], "sensor-1")

    assert broker_allows(permissions, Action.PUBLISH, "dt/sensor-1/temperature")
    assert broker_allows(permissions, Action.SUBSCRIBE, "$aws/things/sensor-1/shadow/get/+")
    assert not broker_allows(permissions, Action.PUBLISH, "dt/sensor-2/temperature")
    assert not broker_allows(permissions, Action.RECEIVE, "$aws/things/sensor-2/shadow/update")
    assert not broker_allows(permissions, Action.SUBSCRIBE, "dt/#")
    assert not broker_allows(permissions, Action.SUBSCRIBE, "dt/+/temperature")


def test_connect_is_answered_for_the_thing_name_as_client_id() -> None:
    other_client = policy(statement("Allow", "iot:Connect", f"{ARN}:client/someone-else"))
    assert not render_for_thing([other_client], THING).can_connect


def test_deny_inside_an_allow_wildcard_becomes_a_deny_rule() -> None:
    rules = [
        policy(
            statement("Allow", "iot:Publish", f"{ARN}:topic/dt/${{iot:Connection.Thing.ThingName}}/*"),
            statement("Deny", "iot:Publish", f"{ARN}:topic/dt/${{iot:Connection.Thing.ThingName}}/secret"),
        )
    ]
    permissions = render_for_thing(rules, THING)

    assert TopicRule(Action.PUBLISH, "dt/t1/secret") in permissions.deny
    assert not broker_allows(permissions, Action.PUBLISH, "dt/t1/secret")
    assert broker_allows(permissions, Action.PUBLISH, "dt/t1/public")


def test_deny_with_a_wildcard_inside_a_level_is_widened_to_the_whole_subtree() -> None:
    rules = [
        policy(
            statement("Allow", "iot:Publish", f"{ARN}:topic/dt/t1/*"),
            statement("Deny", "iot:Publish", f"{ARN}:topic/dt/t1/secret-*"),
        )
    ]
    permissions = render_for_thing(rules, THING)

    assert TopicRule(Action.PUBLISH, "dt/t1/#") in permissions.deny
    assert any("widened to 'dt/t1/#'" in note for note in permissions.narrowed)


def test_deny_starting_with_a_wildcard_removes_every_allow_of_that_action() -> None:
    rules = [
        policy(
            statement("Allow", ["iot:Publish", "iot:Receive"], f"{ARN}:topic/dt/t1/*"),
            statement("Deny", "iot:Publish", f"{ARN}:topic/*/secret"),
        )
    ]
    permissions = render_for_thing(rules, THING)

    assert {rule.action for rule in permissions.allow} == {Action.RECEIVE}
    assert any("denies every topic" in note for note in permissions.narrowed)


def test_allow_with_a_wildcard_inside_a_level_is_left_out_and_reported() -> None:
    rules = [policy(statement("Allow", "iot:Publish", f"{ARN}:topic/dt/t1/temp*"))]
    permissions = render_for_thing(rules, THING)

    assert permissions.allow == ()
    assert any("'dt/t1/temp*' is no MQTT filter; not granted" in note for note in permissions.narrowed)


def test_allow_star_in_the_middle_becomes_a_single_level_wildcard() -> None:
    rules = [policy(statement("Allow", "iot:Publish", f"{ARN}:topic/a/*/z"))]
    permissions = render_for_thing(rules, THING)
    assert permissions.allow == (TopicRule(Action.PUBLISH, "a/+/z"),)


def test_allow_everything_also_reaches_dollar_topics() -> None:
    permissions = render_for_thing([policy(statement("Allow", "iot:*", "*"))], THING)
    assert broker_allows(permissions, Action.PUBLISH, "$aws/things/t1/shadow/update")
    assert broker_allows(permissions, Action.SUBSCRIBE, "any/#")


def test_literal_topic_filter_resources_render_as_literal_subscribe_rules() -> None:
    rules = [policy(statement("Allow", "iot:Subscribe", f"{ARN}:topicfilter/sensors/+/temperature"))]
    permissions = render_for_thing(rules, THING)

    assert permissions.allow == (TopicRule(Action.SUBSCRIBE, "sensors/+/temperature", literal=True),)
    assert broker_allows(permissions, Action.SUBSCRIBE, "sensors/+/temperature")
    assert not broker_allows(permissions, Action.SUBSCRIBE, "sensors/kitchen/temperature")


def test_attributes_are_rendered_and_missing_ones_grant_nothing() -> None:
    rules = [
        policy(
            statement(
                "Allow", "iot:Publish", f"{ARN}:topic/site/${{iot:Connection.Thing.Attributes[site]}}/*"
            )
        )
    ]
    assert render_for_thing(rules, THING, thing_attributes={"site": "paris"}).allow == (
        TopicRule(Action.PUBLISH, "site/paris/#"),
    )
    assert render_for_thing(rules, THING).allow == ()


# --- the rendering never grants what the policies refuse -------------------------------------------------

LEVELS = ["a", "b", "t1", "+", "#", "", "$aws", "x1"]
RESOURCE_LEVELS = [*LEVELS, "*", "?", "x*", "*1", "${iot:Connection.Thing.ThingName}", "${iot:ClientId}"]

resource_names = st.lists(st.sampled_from(RESOURCE_LEVELS), min_size=1, max_size=4).map("/".join)
resources = st.one_of(
    st.just("*"),
    st.builds(
        lambda kind, name: f"{ARN}:{kind}/{name}",
        st.sampled_from(["topic", "topicfilter", "topic*"]),
        resource_names,
    ),
)
statements = st.builds(
    lambda effect, actions, items: statement(effect, actions, *items),
    st.sampled_from(["Allow", "Allow", "Deny"]),
    st.lists(
        st.sampled_from(["iot:Publish", "iot:Subscribe", "iot:Receive", "iot:*"]), min_size=1, max_size=2
    ),
    st.lists(resources, min_size=1, max_size=3),
)
names = st.lists(st.sampled_from(LEVELS), min_size=1, max_size=5).map("/".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(statements, min_size=1, max_size=4), st.lists(names, min_size=1, max_size=8))
def test_rendered_rules_never_allow_what_the_policies_refuse(
    raw_statements: list[dict[str, Any]], candidates: list[str]
) -> None:
    policies = [policy(*raw_statements)]
    permissions = render_for_thing(policies, THING)
    context = RequestContext(client_id=THING, thing_name=THING)

    for name in candidates:
        for action in (Action.PUBLISH, Action.RECEIVE, Action.SUBSCRIBE):
            if not usable(action, name):
                continue  # the broker refuses it before any ACL is consulted
            if broker_allows(permissions, action, name):
                assert evaluate(policies, action, name, context), (action, name, permissions)
