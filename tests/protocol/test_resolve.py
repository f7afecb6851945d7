"""Component resolution messages: what the device builds the cloud parses, what the cloud builds the device parses,
and the shapes each side refuses, naming the field."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.protocol import resolve
from edgewise.protocol.resolve import (
    ArtifactSource,
    Candidate,
    ResolveAccepted,
    ResolveAnswerError,
    ResolveRejection,
    ResolveRequest,
    ResolveRequestError,
)
from edgewise.recipe import RecipeError
from edgewise.versions import Requirement

DIGEST = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
TOPIC = "$aws/things/A/edgewise/components/resolve"

names = st.from_regex(r"[a-zA-Z0-9._-]{1,40}", fullmatch=True)
#: Names a recipe may have: not a directory's.
recipe_names = names.filter(lambda name: name not in {".", ".."})
things = st.from_regex(r"[a-zA-Z0-9:_-]{1,40}", fullmatch=True)
tokens = st.text(min_size=1, max_size=resolve.CLIENT_TOKEN_MAX_LENGTH)
versions = st.builds("{}.{}.{}".format, *(st.integers(0, 999) for _ in range(3)))
requirements = st.sampled_from(
    ["*", "1.0.0", ">=1.0.0 <2.0.0", "^1.2", "~2.0.0", "1.0.x", "1.0.0 - 2.0.0"]
).map(Requirement.parse)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=20,
)


def recipe_document(name: str, version: str) -> dict[str, Any]:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "Manifests": [{"Artifacts": [{"Uri": f"s3://b/{name}.py"}], "Lifecycle": {"Run": "true"}}],
    }


def entry(name: str, listed_as: str, **fields: Any) -> dict[str, Any]:
    return {
        "version": listed_as,
        "recipe": recipe_document(name, listed_as),
        "artifacts": {f"s3://b/{name}.py": {"url": "https://cloud:8443/a?s=1", "size": 1, "digest": DIGEST}},
        **fields,
    }


def test_topics_name_the_thing() -> None:
    assert resolve.request_topic("A") == TOPIC
    assert resolve.reply_topic("A", resolve.ACCEPTED) == f"{TOPIC}/accepted"
    assert resolve.reply_topic("A", resolve.REJECTED) == f"{TOPIC}/rejected"
    assert resolve.request_topic("+") == resolve.REQUEST_FILTER


@given(things)
def test_the_thing_of_a_request_topic_is_the_one_it_was_built_for(thing: str) -> None:
    assert resolve.thing_of(resolve.request_topic(thing)) == thing
    assert resolve.thing_of(resolve.reply_topic(thing, resolve.ACCEPTED)) is None


def test_a_request_is_the_documented_json() -> None:
    request = ResolveRequest(
        {"com.example.Hello": Requirement.parse(">=1.0.0 <2.0.0"), "com.example.Lib": Requirement.parse("*")},
        client_token="c1",
    )

    payload = resolve.build_request(request)

    assert payload == (
        b'{"clientToken": "c1", "components": {"com.example.Hello": ">=1.0.0 <2.0.0", "com.example.Lib": "*"}}'
    )
    assert resolve.parse_request(payload) == request


@given(
    st.dictionaries(names, requirements, min_size=1, max_size=resolve.MAX_COMPONENTS),
    st.none() | tokens,
)
def test_what_the_device_asks_the_cloud_reads(
    wanted: dict[str, Requirement], client_token: str | None
) -> None:
    request = ResolveRequest(wanted, client_token=client_token)

    payload = resolve.build_request(request)

    assert resolve.parse_request(payload) == request
    assert resolve.client_token_of(payload) == client_token


def invalid(field: str, problem: str) -> str:
    return f"Field {field!r} is invalid: {problem}"


NAME_PROBLEM = "the name may only hold letters, digits, '-', '_' and '.' (128 at most)"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b" " * (64 * 1024 + 1), "The payload is larger than 65536 bytes"),
        (b"not json", "The payload is not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"[1]", "The payload must be a JSON object"),
        (
            {"components": {"a": "*"}, "platform": {}},
            invalid("platform", "is not a field of a resolve request (it takes clientToken, components)"),
        ),
        (
            {"clientToken": "", "components": {"a": "*"}},
            invalid("clientToken", "must be a string of 1 to 64 characters"),
        ),
        (
            {"clientToken": "t" * 65, "components": {"a": "*"}},
            invalid("clientToken", "must be a string of 1 to 64 characters"),
        ),
        (
            {"clientToken": 5, "components": {"a": "*"}},
            invalid("clientToken", "must be a string of 1 to 64 characters"),
        ),
        (
            {"components": {}},
            invalid("components", "must be a non-empty object of component name to version requirement"),
        ),
        (
            {"components": ["a"]},
            invalid("components", "must be a non-empty object of component name to version requirement"),
        ),
        (
            {"components": {f"c{index}": "*" for index in range(101)}},
            invalid("components", "names 101 components; at most 100 are allowed"),
        ),
        ({"components": {"bad name": "*"}}, invalid("components.bad name", NAME_PROBLEM)),
        ({"components": {"a" * 129: "*"}}, invalid(f"components.{'a' * 129}", NAME_PROBLEM)),
        (
            {"components": {"a": 1}},
            invalid(
                "components.a", "the version requirement must be a string such as '>=1.0.0 <2.0.0' or '*'"
            ),
        ),
        (
            {"components": {"a": ">>1"}},
            invalid("components.a", "Version requirement '>>1' is not a valid npm-style range"),
        ),
        (
            {"components": {"a": " "}},
            invalid(
                "components.a", "A version requirement must not be empty (write '*' to accept any version)"
            ),
        ),
    ],
)
def test_a_malformed_request_is_refused_naming_the_field(
    payload: bytes | dict[str, Any], message: str
) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    with pytest.raises(ResolveRequestError) as caught:
        resolve.parse_request(body)

    assert str(caught.value) == message
    assert caught.value.code == resolve.INVALID_REQUEST


def test_a_rejection_echoes_only_a_valid_client_token() -> None:
    assert resolve.client_token_of(b'{"clientToken": "c2", "components": 5}') == "c2"
    assert resolve.client_token_of(b'{"clientToken": 5}') is None
    assert resolve.client_token_of(json.dumps({"clientToken": "t" * 65}).encode()) is None
    assert resolve.client_token_of(b"[]") is None
    assert resolve.client_token_of(b"\xff") is None


@given(
    st.binary(max_size=300)
    | st.dictionaries(st.sampled_from(["clientToken", "components", "x"]), json_values).map(
        lambda body: json.dumps(body).encode()
    )
)
def test_any_request_parses_or_is_refused_as_invalid(payload: bytes) -> None:
    try:
        request = resolve.parse_request(payload)
    except ResolveRequestError as exc:
        assert exc.code == resolve.INVALID_REQUEST  # noqa: PT017 - hypothesis drives many payloads through one test
        return
    assert 0 < len(request.requirements) <= resolve.MAX_COMPONENTS


def test_an_answer_is_the_documented_json() -> None:
    candidate = Candidate(
        version="1.1.0",
        recipe={"ComponentName": "com.example.Hello"},
        artifacts={"s3://bucket/hello.zip": ArtifactSource(url="https://cloud/a", digest=DIGEST, size=1234)},
    )
    answer = ResolveAccepted(
        timestamp=1764100000,
        components={"com.example.Hello": [candidate], "com.example.Lib": []},
        client_token="c1",
    )

    assert json.loads(resolve.build_accepted(answer)) == {
        "clientToken": "c1",
        "timestamp": 1764100000,
        "components": {
            "com.example.Hello": [
                {
                    "version": "1.1.0",
                    "recipe": {"ComponentName": "com.example.Hello"},
                    "artifacts": {
                        "s3://bucket/hello.zip": {"url": "https://cloud/a", "size": 1234, "digest": DIGEST}
                    },
                }
            ],
            "com.example.Lib": [],
        },
    }
    assert list(json.loads(resolve.build_accepted(answer))) == ["clientToken", "timestamp", "components"]
    anonymous = ResolveAccepted(timestamp=1, components={})
    assert resolve.build_accepted(anonymous) == b'{"timestamp": 1, "components": {}}'


sources = st.builds(
    ArtifactSource,
    url=st.text(max_size=30).map("https://cloud:8443/artifacts/{}".format),
    digest=st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode()),
    size=st.none() | st.integers(0, 2**40),
)


@st.composite
def candidates(draw: st.DrawFn, name: str) -> Candidate:
    version = draw(versions)
    return Candidate(
        version=version,
        recipe=recipe_document(name, version),
        artifacts=draw(st.dictionaries(st.text(min_size=1, max_size=30), sources, max_size=3)),
    )


@st.composite
def answers(draw: st.DrawFn) -> ResolveAccepted:
    listed = draw(st.lists(recipe_names, unique=True, max_size=4))
    return ResolveAccepted(
        timestamp=draw(st.integers(0, 2**40)),
        components={name: draw(st.lists(candidates(name), max_size=3)) for name in listed},
        client_token=draw(st.none() | tokens),
    )


@given(answers())
def test_what_the_cloud_answers_the_device_reads(answer: ResolveAccepted) -> None:
    reply = resolve.read_reply(resolve.reply_topic("A", resolve.ACCEPTED), resolve.build_accepted(answer))

    assert reply is not None
    assert reply.client_token == answer.client_token
    assert resolve.rejection_of(reply) is None
    offers = resolve.parse_accepted(reply.body)
    assert list(offers) == list(answer.components)
    for name, listed in answer.components.items():
        assert [(offer.recipe.name, offer.recipe.version) for offer in offers[name]] == [
            (name, candidate.version) for candidate in listed
        ]
        assert [offer.document for offer in offers[name]] == [candidate.recipe for candidate in listed]
        assert [offer.artifacts for offer in offers[name]] == [candidate.artifacts for candidate in listed]


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ("A", "components: expected an object of component names"),
        ({"A": {}}, "components.A: expected a list of at most 20 versions"),
        (
            {"A": [entry("A", f"1.0.{patch}") for patch in range(21)]},
            "components.A: expected a list of at most 20",
        ),
        ({"A": [5]}, "components.A[0]: expected an object with version, recipe and artifacts"),
        ({"A": [entry("B", "1.0.0")]}, "components.A[0]: the recipe is B 1.0.0, listed as A '1.0.0'"),
        (
            {"A": [entry("A", "1.0.0", version="2.0.0")]},
            "components.A[0]: the recipe is A 1.0.0, listed as A '2.0.0'",
        ),
        (
            {"A": [entry("A", "1.0.0", recipe="text")]},
            "components.A[0].recipe: expected the recipe as an object",
        ),
        (
            {"A": [entry("A", "1.0.0", artifacts=[])]},
            "components.A[0].artifacts: expected an object keyed by",
        ),
        (
            {"A": [entry("A", "1.0.0", artifacts={"u": "x"})]},
            "components.A[0].artifacts.u: expected an object",
        ),
        (
            {"A": [entry("A", "1.0.0", artifacts={"u": {"url": "http://x", "digest": DIGEST}})]},
            "components.A[0].artifacts.u.url: expected an https:// URL, got 'http://x'",
        ),
        (
            {"A": [entry("A", "1.0.0", artifacts={"u": {"url": "https://x", "digest": "abc"}})]},
            "components.A[0].artifacts.u.digest: expected a base64 SHA-256, got 'abc'",
        ),
        (
            {
                "A": [
                    entry("A", "1.0.0", artifacts={"u": {"url": "https://x", "digest": DIGEST, "size": True}})
                ]
            },
            "components.A[0].artifacts.u.size: expected a number of bytes, got True",
        ),
        (
            {"A": [entry("A", "1.0.0", artifacts={"u": {"url": "https://x", "digest": DIGEST, "size": -1}})]},
            "components.A[0].artifacts.u.size: expected a number of bytes, got -1",
        ),
    ],
)
def test_a_malformed_answer_is_refused_naming_the_field(components: Any, expected: str) -> None:
    with pytest.raises(ResolveAnswerError) as caught:
        resolve.parse_accepted({"components": components})

    assert str(caught.value).startswith(expected)


def test_an_invalid_recipe_in_an_answer_is_a_recipe_error_naming_where_it_was() -> None:
    broken = {**recipe_document("A", "1.0.0"), "Manifests": "none"}

    with pytest.raises(RecipeError) as caught:
        resolve.parse_accepted({"components": {"A": [entry("A", "1.0.0", recipe=broken)]}})

    assert "components.A[0].recipe" in str(caught.value)


@given(st.dictionaries(st.sampled_from(["components", "clientToken"]), json_values))
def test_any_answer_parses_or_is_refused(body: dict[str, Any]) -> None:
    try:
        offers = resolve.parse_accepted(body)
    except (ResolveAnswerError, RecipeError):
        return
    assert all(len(listed) <= resolve.MAX_VERSIONS for listed in offers.values())


def test_a_rejection_is_the_documented_json() -> None:
    rejection = ResolveRejection(
        code="InvalidRequest", message="Field 'x' is invalid", timestamp=7, client_token="c"
    )

    assert resolve.build_rejected(rejection) == (
        b'{"clientToken": "c", "timestamp": 7, "code": "InvalidRequest", "message": "Field \'x\' is invalid"}'
    )
    anonymous = ResolveRejection(code="InternalError", message="m", timestamp=7)
    assert resolve.build_rejected(anonymous) == b'{"timestamp": 7, "code": "InternalError", "message": "m"}'


@given(
    st.builds(
        ResolveRejection,
        code=st.sampled_from([resolve.INVALID_REQUEST, resolve.INTERNAL_ERROR]),
        message=st.text(),
        timestamp=st.integers(0, 2**40),
        client_token=st.none() | tokens,
    )
)
def test_what_the_cloud_rejects_the_device_reads(rejection: ResolveRejection) -> None:
    reply = resolve.read_reply(resolve.reply_topic("A", resolve.REJECTED), resolve.build_rejected(rejection))

    assert reply is not None
    assert reply.client_token == rejection.client_token
    assert resolve.rejection_of(reply) == rejection


def test_a_device_never_leaves_a_rejection_unread() -> None:
    bare = resolve.read_reply(f"{TOPIC}/rejected", b'{"clientToken": "c"}')
    assert bare is not None
    assert resolve.rejection_of(bare) == ResolveRejection(
        code="InternalError", message="None", client_token="c"
    )
    coded = resolve.read_reply(f"{TOPIC}/accepted", b'{"code": 5, "message": ["m"], "timestamp": true}')
    assert coded is not None
    assert resolve.rejection_of(coded) == ResolveRejection(code="5", message="['m']")


@pytest.mark.parametrize("payload", [b"[]", b"5", b"not json", b"\xff", b"[" * 100_000])
def test_a_reply_that_is_not_a_json_object_is_not_read(payload: bytes) -> None:
    assert resolve.read_reply(f"{TOPIC}/accepted", payload) is None


def test_a_reply_with_a_token_that_is_not_text_matches_no_request() -> None:
    reply = resolve.read_reply(f"{TOPIC}/accepted", b'{"clientToken": 5, "components": {}}')

    assert reply is not None
    assert reply.client_token is None
    assert resolve.parse_accepted(reply.body) == {}
