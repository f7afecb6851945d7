"""Shadow document semantics: merge, metadata, delta, version, clientToken, validation, as AWS IoT Device Shadow documents behave."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgewise.protocol.shadow.document import (
    Shadow,
    UpdateOutcome,
    apply_update,
    compute_delta,
    get_document,
    parse_update,
)
from edgewise.runtime.shadow import (
    InvalidShadowRequestError,
    PayloadTooLargeError,
    ShadowVersionConflictError,
    topic_prefix,
    validate_shadow_name,
    validate_thing_name,
)

T0, T1 = 1_700_000_000, 1_700_000_100
LIMIT = 8192


def _update(
    previous: Shadow | None, request: dict[str, Any], *, now: int = T0, limit: int = LIMIT
) -> UpdateOutcome:
    version = previous.version if previous else 0
    parsed = parse_update(json.dumps(request).encode(), max_bytes=2 * limit)
    return apply_update(previous, parsed, current_version=version, now=now, max_state_bytes=limit)


def test_first_update_creates_version_1_with_a_timestamp_per_leaf() -> None:
    outcome = _update(None, {"state": {"desired": {"color": "red", "lamp": {"on": True}, "rgb": [1, 2]}}})

    assert outcome.shadow.version == 1
    assert outcome.shadow.state == {"desired": {"color": "red", "lamp": {"on": True}, "rgb": [1, 2]}}
    assert outcome.shadow.metadata == {
        "desired": {
            "color": {"timestamp": T0},
            "lamp": {"on": {"timestamp": T0}},
            "rgb": [{"timestamp": T0}, {"timestamp": T0}],
        }
    }


def test_update_merges_key_by_key_and_keeps_untouched_metadata() -> None:
    first = _update(None, {"state": {"desired": {"color": "red", "lamp": {"on": True, "level": 3}}}}).shadow
    second = _update(first, {"state": {"desired": {"lamp": {"level": 5}}}}, now=T1).shadow

    assert second.version == 2
    assert second.state["desired"] == {"color": "red", "lamp": {"on": True, "level": 5}}
    assert second.metadata["desired"]["color"] == {"timestamp": T0}
    assert second.metadata["desired"]["lamp"] == {"on": {"timestamp": T0}, "level": {"timestamp": T1}}


def test_null_deletes_a_key_and_its_metadata_and_empty_objects_disappear() -> None:
    first = _update(None, {"state": {"reported": {"a": 1, "nested": {"b": 2}}}}).shadow
    second = _update(first, {"state": {"reported": {"a": None, "nested": {"b": None}}}}).shadow

    assert second.state == {}
    assert second.metadata == {}


def test_null_section_removes_it_and_null_state_clears_everything() -> None:
    first = _update(None, {"state": {"desired": {"a": 1}, "reported": {"a": 2}}}).shadow
    without_desired = _update(first, {"state": {"desired": None}}).shadow
    cleared = _update(first, {"state": None})

    assert without_desired.state == {"reported": {"a": 2}}
    assert cleared.shadow.state == {}
    assert cleared.shadow.version == 2
    assert cleared.accepted["state"] is None


def test_arrays_are_replaced_whole() -> None:
    first = _update(None, {"state": {"desired": {"list": [1, 2, 3]}}}).shadow
    second = _update(first, {"state": {"desired": {"list": [4]}}}).shadow

    assert second.state["desired"]["list"] == [4]
    assert second.metadata["desired"]["list"] == [{"timestamp": T0}]


def test_a_leaf_replaced_by_an_object_gets_object_metadata() -> None:
    first = _update(None, {"state": {"desired": {"x": 1}}}).shadow
    second = _update(first, {"state": {"desired": {"x": {"y": 2}}}}, now=T1).shadow

    assert second.state["desired"] == {"x": {"y": 2}}
    assert second.metadata["desired"] == {"x": {"y": {"timestamp": T1}}}


def test_accepted_document_echoes_the_request_state_and_token_with_metadata_for_touched_leaves() -> None:
    first = _update(None, {"state": {"desired": {"a": 1, "b": 2}}}).shadow
    outcome = _update(
        first,
        {"state": {"desired": {"a": None, "c": {"d": 3}}, "ignored": 1}, "clientToken": "tok-1"},
        now=T1,
    )

    assert outcome.accepted == {
        "state": {"desired": {"a": None, "c": {"d": 3}}},
        "metadata": {"desired": {"a": {"timestamp": T1}, "c": {"d": {"timestamp": T1}}}},
        "version": 2,
        "timestamp": T1,
        "clientToken": "tok-1",
    }


def test_documents_event_has_previous_and_current_snapshots() -> None:
    created = _update(None, {"state": {"reported": {"a": 1}}, "clientToken": "t"})
    updated = _update(created.shadow, {"state": {"reported": {"a": 2}}}, now=T1)

    assert "previous" not in created.documents
    assert created.documents["current"]["version"] == 1
    assert created.documents["clientToken"] == "t"
    assert updated.documents["previous"] == {
        "state": {"reported": {"a": 1}},
        "metadata": {"reported": {"a": {"timestamp": T0}}},
        "version": 1,
    }
    assert updated.documents["current"]["state"] == {"reported": {"a": 2}}
    assert updated.documents["timestamp"] == T1


def test_delta_holds_the_full_current_difference_with_desired_metadata() -> None:
    first = _update(None, {"state": {"desired": {"a": 1, "b": {"c": 2, "d": 3}}}}).shadow
    outcome = _update(first, {"state": {"reported": {"a": 1, "b": {"c": 2}}}, "clientToken": "r"}, now=T1)

    assert outcome.delta == {
        "state": {"b": {"d": 3}},
        "metadata": {"b": {"d": {"timestamp": T0}}},
        "version": 2,
        "timestamp": T1,
        "clientToken": "r",
    }


def test_no_delta_when_reported_matches_desired() -> None:
    first = _update(None, {"state": {"desired": {"a": 1}}}).shadow
    outcome = _update(first, {"state": {"reported": {"a": 1.0}}})

    assert outcome.delta is None
    assert "delta" not in get_document(outcome.shadow, now=T1)["state"]


@pytest.mark.parametrize(
    ("desired", "reported", "delta"),
    [
        ({"a": 1}, {}, {"a": 1}),
        ({"a": 1}, {"a": 1.0}, {}),
        ({"a": True}, {"a": 1}, {"a": True}),
        ({"a": 1}, {"a": "1"}, {"a": 1}),
        ({"a": [1, 2]}, {"a": [1, 2]}, {}),
        ({"a": [1, 2]}, {"a": [2, 1]}, {"a": [1, 2]}),
        ({"a": {"b": 1}}, {"a": 5}, {"a": {"b": 1}}),
        ({}, {"only": "reported"}, {}),
        ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"c": 1}}}, {"a": {"b": {"d": 2}}}),
    ],
)
def test_delta_compares_json_values(desired: dict[str, Any], reported: dict[str, Any], delta: Any) -> None:
    assert compute_delta(desired, reported) == delta


def test_get_document_has_state_delta_metadata_version_and_timestamp() -> None:
    shadow = _update(None, {"state": {"desired": {"a": 2}, "reported": {"a": 1}}}).shadow

    assert get_document(shadow, now=T1) == {
        "state": {"desired": {"a": 2}, "reported": {"a": 1}, "delta": {"a": 2}},
        "metadata": {"desired": {"a": {"timestamp": T0}}, "reported": {"a": {"timestamp": T0}}},
        "version": 1,
        "timestamp": T1,
    }


def test_matching_version_is_accepted_and_another_is_a_conflict() -> None:
    first = _update(None, {"state": {"desired": {"a": 1}}}).shadow
    assert _update(first, {"state": {"desired": {"a": 2}}, "version": 1}).shadow.version == 2

    with pytest.raises(ShadowVersionConflictError) as caught:
        _update(first, {"state": {"desired": {"a": 2}}, "version": 7})

    assert caught.value.code == 409
    assert (caught.value.expected, caught.value.current) == (7, 1)


def test_numbering_continues_after_a_delete() -> None:
    parsed = parse_update(b'{"state": {"reported": {"a": 1}}}', max_bytes=LIMIT)

    outcome = apply_update(None, parsed, current_version=4, now=T0, max_state_bytes=LIMIT)

    assert outcome.shadow.version == 5
    assert "previous" not in outcome.documents


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "Invalid JSON"),
        (b"[1, 2]", "Invalid JSON"),
        (b'{"state": NaN}', "Invalid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"desired": {}}', "Missing required node: state"),
        (b'{"state": [1]}', "State node must be an object"),
        (b'{"state": {"desired": 5}}', "Desired node must be an object"),
        (b'{"state": {"reported": "x"}}', "Reported node must be an object"),
        (b'{"state": {}, "version": -1}', "Invalid version"),
        (b'{"state": {}, "version": true}', "Invalid version"),
        (b'{"state": {}, "version": "3"}', "Invalid version"),
        (b'{"state": {}, "clientToken": 5}', "Invalid clientToken"),
        (b'{"state": {}, "clientToken": "' + b"x" * 65 + b'"}', "Invalid clientToken"),
        (b'{"state": {"desired": {"a": [1, null]}}}', "State contains an invalid node"),
        (
            b'{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}',
            "too many levels of nesting",
        ),
        (b"[" * 5000 + b"]" * 5000, "Invalid JSON"),
    ],
)
def test_malformed_requests_are_rejected_with_the_aws_message(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidShadowRequestError) as caught:
        parse_update(payload, max_bytes=100_000)

    assert message in caught.value.message
    assert caught.value.code == 400


def test_six_levels_of_nesting_counted_from_state_are_allowed() -> None:
    request = parse_update(b'{"state": {"desired": {"a": {"b": {"c": {"d": {"e": 1}}}}}}}', max_bytes=LIMIT)

    assert request.state == {"desired": {"a": {"b": {"c": {"d": {"e": 1}}}}}}


def test_oversized_request_and_oversized_state_are_too_large() -> None:
    with pytest.raises(PayloadTooLargeError):
        parse_update(b'{"state": {"desired": {"a": "' + b"x" * 200 + b'"}}}', max_bytes=100)
    first = _update(None, {"state": {"desired": {"a": "x" * 60}}}, limit=100).shadow

    with pytest.raises(PayloadTooLargeError) as caught:
        _update(first, {"state": {"reported": {"b": "y" * 60}}}, limit=100)

    assert caught.value.code == 413
    assert caught.value.limit == 100


@pytest.mark.parametrize("name", ["t", "Thing_1:a-b", "x" * 128])
def test_valid_thing_names(name: str) -> None:
    assert validate_thing_name(name) == name


@pytest.mark.parametrize("name", ["", None, 5, "x" * 129, "has space", "a/b", "#", "+"])
def test_invalid_thing_names_name_the_field(name: object) -> None:
    with pytest.raises(InvalidShadowRequestError, match="thingName"):
        validate_thing_name(name)


def test_shadow_names_empty_means_classic_and_invalid_names_name_the_field() -> None:
    assert validate_shadow_name("") == ""
    assert validate_shadow_name(None) == ""
    assert validate_shadow_name("config-1") == "config-1"
    for bad in ("x" * 65, "a/b", "a+b", 3):
        with pytest.raises(InvalidShadowRequestError, match="shadowName"):
            validate_shadow_name(bad)


def test_topic_prefixes_for_classic_and_named_shadows() -> None:
    assert topic_prefix("t", "") == "$aws/things/t/shadow"
    assert topic_prefix("t", "s") == "$aws/things/t/shadow/name/s"
