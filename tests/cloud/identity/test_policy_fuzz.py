from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.cloud.identity import PolicyDocument, PolicyError, parse_policy, validate_policy

PATH = re.compile(r"^([A-Za-z]\w*|Statement(\[\d+\])?(\.\w+(\[\d+\])?)?)?$")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
# Documents that are nearly right reach deeper into the validator than arbitrary JSON does.
words = st.sampled_from(
    [
        "iot:Connect",
        "iot:publish",
        "iot:*",
        "iot:Fly",
        "*",
        "Allow",
        "Deny",
        "arn:aws:iot:r:1:topic/a/*",
        "arn:aws:iot:r:1:topicfilter/${iot:ClientId}",
        "arn:aws:iot:r:1:client/${iot:Nope}",
        "arn:aws:iot:*",
        "${",
        "arn:aws:iot:r:1:thing/${iot:Connection.Thing.Attributes[x]}",
        "2012-10-17",
    ]
)
fields = words | json_values | st.lists(words | json_values, max_size=3)
statements = st.dictionaries(
    st.sampled_from(["Effect", "Action", "Resource", "Sid", "Condition", "Other"]), fields, max_size=5
)
near_documents = st.fixed_dictionaries(
    {"Version": st.sampled_from(["2012-10-17", "2008-10-17"]) | json_values},
    optional={"Statement": statements | st.lists(statements | json_values, max_size=4), "Id": fields},
)


def check(document: object) -> None:
    try:
        parsed = validate_policy(document)
    except PolicyError as error:
        problems = error.problems
    else:
        assert isinstance(parsed, PolicyDocument)
        assert validate_policy(parsed.to_document()) == parsed
        return
    assert problems
    for problem in problems:
        assert PATH.match(problem.path), problem
        assert problem.message


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_is_a_policy_or_a_policy_error(document: Any) -> None:
    check(document)


@settings(max_examples=500, deadline=None)
@given(near_documents)
def test_near_valid_documents_are_a_policy_or_a_policy_error_with_paths(document: dict[str, Any]) -> None:
    check(document)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | json_values.map(json.dumps) | near_documents.map(json.dumps))
def test_any_text_parses_to_a_policy_or_a_policy_error(text: str) -> None:
    try:
        parse_policy(text)
    except PolicyError as error:
        problems = error.problems
    else:
        return
    assert problems


def test_deeply_nested_json_text_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match=r"not valid JSON|must be a JSON object"):
        parse_policy("[" * 100_000 + "]" * 100_000)
