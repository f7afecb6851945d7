"""Reading a publish request's method and target: AWS's path, query parameters and topic rules, every refusal
naming the field; any target at all is either a request or a refusal (hypothesis)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.cloud.https_publish import (
    InvalidPublishRequestError,
    PublishMethodNotAllowedError,
    PublishRefusedError,
    PublishRequest,
    PublishTargetNotFoundError,
    parse_publish_target,
)


def test_a_topic_is_percent_decoded_with_qos_and_retain_defaulting_as_in_aws() -> None:
    assert parse_publish_target("POST", "/topics/dt/A/temp") == PublishRequest(
        "dt/A/temp", qos=0, retain=False
    )
    assert parse_publish_target("POST", "/topics/dt%2FA%2Ft%C3%A9mp?qos=1&retain=true") == PublishRequest(
        "dt/A/témp", qos=1, retain=True
    )
    assert parse_publish_target("POST", "/topics/a b?retain=FALSE&qos=0") == PublishRequest("a b")


@pytest.mark.parametrize(
    ("target", "field", "problem"),
    [
        ("/topics/a?qos=2", "qos", "'2' is not a QoS; use 0 or 1"),
        ("/topics/a?qos=", "qos", "'' is not a QoS"),
        ("/topics/a?retain=yes", "retain", "'yes' is not a boolean"),
        ("/topics/a?qos=1&qos=0", "qos", "given more than once"),
        ("/topics/a?clientId=x", "clientId", "unknown query parameter"),
        ("/topics/a?contentType=json", "contentType", "MQTT 5 message properties are not supported"),
        ("/topics/a?qos", "query", "is not a query string"),
        ("/topics/", "topic", "must not be empty"),
        ("/topics/a/%23", "topic", "contains a wildcard"),
        ("/topics/a/+/b", "topic", "contains a wildcard"),
        ("/topics/a%00b", "topic", "must not contain NUL"),
        ("/topics/%FF", "topic", "not UTF-8"),
        ("/topics/" + "x" * 257, "topic", "257 bytes long; a topic has at most 256"),
        ("/topics/1/2/3/4/5/6/7/8/9", "topic", "8 slashes; a topic has at most 7"),
    ],
)
def test_a_bad_topic_or_parameter_is_400_naming_it(target: str, field: str, problem: str) -> None:
    with pytest.raises(InvalidPublishRequestError) as refused:
        parse_publish_target("POST", target)

    assert refused.value.status == 400
    assert refused.value.error_type == "InvalidRequestException"
    assert refused.value.field == field
    assert problem in refused.value.problem


def test_another_path_is_404_and_another_method_405() -> None:
    with pytest.raises(PublishTargetNotFoundError) as missing:
        parse_publish_target("POST", "/things/A")
    with pytest.raises(PublishMethodNotAllowedError) as method:
        parse_publish_target("GET", "/topics/a")

    assert (missing.value.status, missing.value.error_type) == (404, "ResourceNotFoundException")
    assert (method.value.status, method.value.error_type) == (405, "MethodNotAllowedException")


TOPIC_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
).filter(lambda topic: topic.count("/") <= 7)


@given(topic=TOPIC_TEXT, qos=st.sampled_from(["0", "1"]), retain=st.booleans())
def test_any_valid_topic_survives_percent_encoding(topic: str, qos: str, retain: bool) -> None:
    target = f"/topics/{quote(topic, safe='')}?qos={qos}&retain={str(retain).lower()}"

    assert parse_publish_target("POST", target) == PublishRequest(topic, qos=int(qos), retain=retain)


def outcome(method: str, target: str) -> PublishRequest | PublishRefusedError:
    try:
        return parse_publish_target(method, target)
    except PublishRefusedError as refused:
        return refused


@given(method=st.sampled_from(["POST", "GET", "PUT", "HEAD"]), target=st.text(max_size=300))
def test_any_target_is_a_request_or_a_refusal(method: str, target: str) -> None:
    answer = outcome(method, target)

    if isinstance(answer, PublishRefusedError):
        assert 400 <= answer.status < 500
        assert answer.message
    else:
        assert method == "POST"
        assert target.startswith("/topics/")
        assert 1 <= len(answer.topic.encode()) <= 256
        assert answer.qos in (0, 1)
