"""Rendering device permissions into Mosquitto's ACL file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.cloud.broker import (
    BrokerConfigError,
    DevicePermissions,
    intersect_filters,
    render_acl,
    write_acl,
)
from edgewise.topics import filter_matches


def test_render_sorts_devices_and_merges_rights_per_filter() -> None:
    text = render_acl(
        [
            DevicePermissions("B", publish=("dt/B/#",), subscribe=("dt/B/#",), receive=("dt/B/#",)),
            DevicePermissions(
                "A",
                publish=("dt/A/#", "$aws/things/A/shadow/update"),
                subscribe=("$aws/things/+/shadow/#",),
                receive=("$aws/things/A/#",),
            ),
        ]
    )
    assert text.splitlines()[1:] == [
        "",
        "user A",
        "topic read $aws/things/A/shadow/#",
        "topic write $aws/things/A/shadow/update",
        "topic write dt/A/#",
        "",
        "user B",
        "topic readwrite dt/B/#",
    ]


def test_render_when_subscribe_has_no_matching_receive_grants_no_read() -> None:
    text = render_acl([DevicePermissions("A", subscribe=("cmd/A/#",), receive=("dt/A/#",))])
    assert "user A" not in text


def test_render_writes_deny_lines() -> None:
    text = render_acl([DevicePermissions("A", publish=("dt/A/#",), deny=("dt/A/secret",))])
    assert "topic deny dt/A/secret" in text.splitlines()


def test_render_when_a_thing_appears_twice_raises() -> None:
    with pytest.raises(BrokerConfigError, match="'A' appears more than once"):
        render_acl([DevicePermissions("A"), DevicePermissions("A")])


@pytest.mark.parametrize("thing_name", ["a/b", "a+", "#", "a b", "", "x" * 129, "a\nuser B"])
def test_permissions_when_thing_name_is_invalid_names_the_field(thing_name: str) -> None:
    with pytest.raises(BrokerConfigError) as raised:
        DevicePermissions(thing_name)
    assert raised.value.field == "thing_name"


@pytest.mark.parametrize(
    ("field", "value"),
    [("publish", "a/#/b"), ("subscribe", "a/b+"), ("receive", ""), ("deny", " a"), ("publish", "a\nuser B")],
)
def test_permissions_when_filter_is_invalid_names_the_field_and_index(field: str, value: str) -> None:
    with pytest.raises(BrokerConfigError) as raised:
        DevicePermissions("A", **{field: ("ok/topic", value)})
    assert raised.value.field == f"{field}[1]"


def test_permissions_when_filters_are_a_string_raises() -> None:
    with pytest.raises(BrokerConfigError, match="publish: must be a tuple"):
        DevicePermissions("A", publish="dt/A/#")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("$aws/things/+/shadow/#", "$aws/things/A/#", "$aws/things/A/shadow/#"),
        ("a/#", "a", "a"),
        ("a/+", "+/b", "a/b"),
        ("#", "$aws/things/A", None),
        ("+/x", "$SYS/x", None),
        ("a/+", "a/b/c", None),
        ("a/b", "a/c", None),
        ("#", "+/+", "+/+"),
    ],
)
def test_intersect_filters(first: str, second: str, expected: str | None) -> None:
    assert intersect_filters(first, second) == expected
    assert intersect_filters(second, first) == expected


_LEVEL = st.sampled_from(["a", "b", "$x", ""])
_FILTER_LEVEL = st.sampled_from(["a", "b", "$x", "", "+"])


@st.composite
def _filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(_FILTER_LEVEL, min_size=1, max_size=3))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@given(_filters(), _filters(), st.lists(_LEVEL, min_size=1, max_size=4).map("/".join))
def test_intersection_matches_exactly_the_topics_both_filters_match(
    first: str, second: str, topic: str
) -> None:
    both = intersect_filters(first, second)
    expected = filter_matches(first, topic) and filter_matches(second, topic)
    assert (both is not None and filter_matches(both, topic)) == expected


def test_write_acl_reports_change_and_keeps_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / "devices.acl"
    devices = [DevicePermissions("A", publish=("dt/A/#",))]
    assert write_acl(path, devices)
    assert not write_acl(path, devices)
    assert write_acl(path, [DevicePermissions("A", publish=("dt/A/x",))])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]
