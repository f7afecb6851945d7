"""AWS-provided components: the catalogue of built-ins, AWS namespaces, and the major-line rule of built-ins."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise import GREENGRASS_COMPATIBILITY_VERSION
from edgewise.aws_components import (
    BUILTIN_COMPONENTS,
    BUILTIN_VERSIONS,
    is_aws_component,
    served_note,
    serves,
    unprovided_problem,
)
from edgewise.versions import Requirement, Version


def test_the_catalogue_serves_the_runtimes_own_services_at_the_compatible_nucleus_version() -> None:
    assert set(BUILTIN_COMPONENTS) == {
        "aws.greengrass.Nucleus",
        "aws.greengrass.Cli",
        "aws.greengrass.LogManager",
        "aws.greengrass.SecretManager",
        "aws.greengrass.ShadowManager",
        "aws.greengrass.StreamManager",
        "aws.greengrass.clientdevices.Auth",
        "aws.greengrass.clientdevices.mqtt.Moquette",
        "aws.greengrass.clientdevices.mqtt.EMQX",
        "aws.greengrass.clientdevices.mqtt.Bridge",
        "aws.greengrass.clientdevices.IPDetector",
    }
    assert dict(BUILTIN_VERSIONS) == dict.fromkeys(BUILTIN_COMPONENTS, GREENGRASS_COMPATIBILITY_VERSION)
    with pytest.raises(TypeError):
        BUILTIN_VERSIONS["aws.greengrass.LogManager"] = "2.1.0"  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "aws"),
    [
        ("aws.greengrass.StreamManager", True),
        ("aws.greengrass.clientdevices.mqtt.Bridge", True),
        ("aws.iot.SiteWiseEdgePublisher", True),
        ("aws.greengrass.Nucleus", True),
        ("com.example.aws.greengrass.Thing", False),
        ("awsome.Component", False),
        ("aws.greengrassy.Thing", False),
    ],
)
def test_aws_namespaces_are_recognised_by_prefix(name: str, aws: bool) -> None:
    assert is_aws_component(name) is aws


@pytest.mark.parametrize(
    "requirement", ["2.4.0", "2.12.0", "^2.0.0", ">=2.5.0 <2.11.0", ">=2.13.0", "~2.1", "2.x", "*", ">=1.0.0"]
)
def test_a_built_in_serves_every_requirement_on_its_major_line(requirement: str) -> None:
    assert serves("2.12.0", Requirement.parse(requirement))


@pytest.mark.parametrize(
    "requirement", ["1.0.0", "^1.0.0", "<2.0.0", "1.x", ">=3.0.0", "3.0.0-beta.1", "^1.0.0 || ^3.0.0"]
)
def test_a_built_in_does_not_serve_another_major_line(requirement: str) -> None:
    assert not serves("2.12.0", Requirement.parse(requirement))


def test_messages_name_the_component_and_what_is_served() -> None:
    assert served_note("2.12.0") == "built in: 2.12.0, which serves major version 2 only"
    assert unprovided_problem("aws.greengrass.DockerApplicationManager") == (
        "aws.greengrass.DockerApplicationManager is an AWS-provided component that Edgewise does not provide "
        "(built in: aws.greengrass.Nucleus, aws.greengrass.Cli, aws.greengrass.LogManager, "
        "aws.greengrass.SecretManager, "
        "aws.greengrass.ShadowManager, aws.greengrass.StreamManager, aws.greengrass.clientdevices.Auth, "
        "aws.greengrass.clientdevices.mqtt.Moquette, aws.greengrass.clientdevices.mqtt.EMQX, "
        "aws.greengrass.clientdevices.mqtt.Bridge, aws.greengrass.clientdevices.IPDetector)"
    )


# --- property: admits_major agrees with trying every version of a small universe ---------------------

_PRERELEASES = [(), ("beta",), ("beta", "1")]
_BOUND_VERSIONS = [
    Version(major, minor, patch, pre)
    for major in (1, 2, 3)
    for minor in range(3)
    for patch in range(3)
    for pre in _PRERELEASES
]
# Every version a range over those bounds can admit first: each bound, its successor, and each line's start.
_UNIVERSE = sorted(
    {
        Version(major, minor, patch, pre)
        for major in (1, 2, 3)
        for minor in range(4)
        for patch in range(4)
        for pre in [(), ("0",), ("beta",), ("beta", "0"), ("beta", "1"), ("beta", "1", "0")]
    }
)
_comparators = st.tuples(st.sampled_from(["", ">", ">=", "<", "<="]), st.sampled_from(_BOUND_VERSIONS)).map(
    lambda pair: f"{pair[0]}{pair[1]}"
)
_ranges = st.lists(st.lists(_comparators, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=2).map(
    " || ".join
)


@given(_ranges)
def test_admits_major_is_true_exactly_when_some_version_of_the_line_is_allowed(text: str) -> None:
    requirement = Requirement.parse(text)

    for major in (1, 2, 3):
        expected = any(requirement.allows(v) for v in _UNIVERSE if v.major == major)
        assert requirement.admits_major(major) is expected, (text, major)
