"""Semantic versions and npm-style requirements."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.versions import MAX_VERSION_NUMBER, Requirement, Version, VersionError


def test_version_parses_every_part_and_round_trips() -> None:
    version = Version.parse("1.22.333-rc.1.x-y+build.007")

    assert (version.major, version.minor, version.patch) == (1, 22, 333)
    assert version.prerelease == ("rc", "1", "x-y")
    assert version.build == ("build", "007")
    assert version.is_prerelease
    assert str(version) == "1.22.333-rc.1.x-y+build.007"


def test_versions_sort_by_semver_precedence() -> None:
    ordered = [
        "0.9.9",
        "1.0.0-0",
        "1.0.0-2",
        "1.0.0-10",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
        "10.0.0",
    ]
    versions = [Version.parse(text) for text in ordered]

    assert sorted(reversed(versions)) == versions
    assert all(a < b and b > a and a <= b and b >= a for a, b in itertools.pairwise(versions))


def test_build_metadata_is_kept_but_ignored_for_ordering_and_equality() -> None:
    with_build = Version.parse("1.0.0+abc")

    assert str(with_build) == "1.0.0+abc"
    assert with_build == Version.parse("1.0.0+def") == Version.parse("1.0.0")
    assert hash(with_build) == hash(Version.parse("1.0.0"))
    assert not with_build < Version.parse("1.0.0")


def test_version_limits_are_accepted_at_the_boundary() -> None:
    assert Version.parse(f"{MAX_VERSION_NUMBER}.0.{MAX_VERSION_NUMBER}").patch == MAX_VERSION_NUMBER
    assert str(Version.parse("1.0.0-" + "a" * 58)) == "1.0.0-" + "a" * 58


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("v1.0.0", "must not start with 'v'"),
        ("V1.0.0", "must not start with 'V'"),
        ("1.0", "is not a semantic version"),
        ("1.0.0.0", "is not a semantic version"),
        ("01.0.0", "is not a semantic version"),
        ("1.0.0-01", "is not a semantic version"),
        ("1.0.0-", "is not a semantic version"),
        ("1.0.0+", "is not a semantic version"),
        ("1.0.0-a..b", "is not a semantic version"),
        (" 1.0.0", "is not a semantic version"),
        ("1.0.0\n", "is not a semantic version"),
        ("", "is not a semantic version"),
        ("1000000.0.0", "major must be a whole number from 0 to 999999"),
        ("0.1000000.0", "minor must be a whole number from 0 to 999999"),
        ("1.0.0-" + "a" * 59, "longer than 64 characters"),
        ("1.0.٣", "is not a semantic version"),
    ],
)
def test_invalid_versions_are_rejected_with_the_reason(text: str, fragment: str) -> None:
    with pytest.raises(VersionError, match=re.escape(fragment)) as caught:
        Version.parse(text)

    assert caught.value.text == text


def test_version_parse_rejects_non_strings() -> None:
    with pytest.raises(VersionError, match="must be a string"):
        Version.parse(100)  # type: ignore[arg-type]


def test_version_constructor_validates_its_fields() -> None:
    with pytest.raises(VersionError, match="patch"):
        Version(1, 0, -1)
    with pytest.raises(VersionError, match="prerelease identifier"):
        Version(1, 0, 0, ("01",))
    with pytest.raises(VersionError, match="build identifier"):
        Version(1, 0, 0, (), ("a b",))


def test_versions_do_not_compare_with_other_types() -> None:
    assert Version.parse("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        _ = Version.parse("1.0.0") < "2.0.0"  # type: ignore[operator]


@pytest.mark.parametrize(
    ("requirement", "allowed", "refused"),
    [
        ("1.0.0", ["1.0.0", "1.0.0+build"], ["1.0.1", "0.9.9"]),
        ("=1.0.0", ["1.0.0"], ["1.0.1"]),
        (">=1.2.0 <2.0.0", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
        ("^1.2", ["1.2.0", "1.99.0"], ["1.1.0", "2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0"]),
        ("~2.0.0", ["2.0.0", "2.0.9"], ["2.1.0"]),
        ("1.0.x", ["1.0.0", "1.0.7"], ["1.1.0"]),
        ("*", ["0.0.0", "999999.0.0"], []),
        ("1.0.0 - 2.0.0", ["1.0.0", "2.0.0"], ["2.0.1", "0.9.0"]),
        ("<1.0.0 || >=3.0.0", ["0.1.0", "3.0.0"], ["1.0.0", "2.5.0"]),
        (">= 1.0.0", ["1.0.0"], ["0.1.0"]),
    ],
)
def test_requirements_follow_npm_ranges(requirement: str, allowed: list[str], refused: list[str]) -> None:
    parsed = Requirement.parse(requirement)

    assert [version for version in allowed if not parsed.allows(Version.parse(version))] == []
    assert [version for version in refused if parsed.allows(version)] == []


@pytest.mark.parametrize(
    ("requirement", "version", "allowed"),
    [
        ("^1.2", "1.3.0-beta", False),
        ("*", "1.0.0-alpha", False),
        (">=1.0.0", "2.0.0-rc.1", False),
        ("^1.2.3-beta.1", "1.2.3-beta.2", True),
        ("^1.2.3-beta.1", "1.2.4-beta.1", False),
        ("1.0.0-rc.1", "1.0.0-rc.1", True),
        (">=1.0.0-0", "1.0.0-alpha", True),
    ],
)
def test_prereleases_are_only_in_ranges_that_name_one(requirement: str, version: str, allowed: bool) -> None:
    assert Requirement.parse(requirement).allows(version) is allowed


def test_requirement_keeps_its_text() -> None:
    requirement = Requirement.parse("  >=1.0.0 <2.0.0 ")

    assert str(requirement) == ">=1.0.0 <2.0.0"
    assert requirement == Requirement.parse(">=1.0.0 <2.0.0")
    assert requirement != Requirement.parse(">=1.0.0")
    assert len({requirement, Requirement.parse(">=1.0.0 <2.0.0")}) == 1
    assert repr(requirement) == "Requirement('>=1.0.0 <2.0.0')"


@pytest.mark.parametrize("text", ["abc", ">=", "1.0.0.0", "latest", ">=a", "", "   ", "1.0.0 <> 2"])
def test_invalid_requirements_name_the_text(text: str) -> None:
    expected = "must not be empty" if not text.strip() else re.escape(repr(text))
    with pytest.raises(VersionError, match=expected):
        Requirement.parse(text)


def test_requirement_parse_rejects_non_strings() -> None:
    with pytest.raises(VersionError, match="must be a string"):
        Requirement.parse(["1.0.0"])  # type: ignore[arg-type]


_IDENTIFIER = st.from_regex(r"[0-9A-Za-z-]{1,6}", fullmatch=True).filter(
    lambda text: not (text.isdigit() and len(text) > 1 and text.startswith("0"))
)
_VERSIONS = st.builds(
    Version,
    st.integers(0, MAX_VERSION_NUMBER),
    st.integers(0, MAX_VERSION_NUMBER),
    st.integers(0, MAX_VERSION_NUMBER),
    st.lists(_IDENTIFIER, max_size=3).map(tuple),
    st.lists(_IDENTIFIER, max_size=2).map(tuple),
).filter(lambda version: len(str(version)) <= 64)


@given(st.text(max_size=80))
def test_version_parse_either_parses_or_raises_version_error(text: str) -> None:
    try:
        version = Version.parse(text)
    except VersionError:
        return
    assert str(version) == text


@given(_VERSIONS)
def test_every_version_round_trips_and_is_understood_by_ranges(version: Version) -> None:
    assert Version.parse(str(version)) == version
    assert str(Version.parse(str(version))) == str(version)
    assert Requirement.parse(f"={version}").allows(version)


@given(_VERSIONS, _VERSIONS)
def test_ordering_agrees_with_node_semver(left: Version, right: Version) -> None:
    exact = Requirement.parse(f">{right}")
    if not left.is_prerelease or (left.major, left.minor, left.patch) == (
        right.major,
        right.minor,
        right.patch,
    ):
        assert exact.allows(left) is (left > right)


@given(st.text(max_size=40))
def test_requirement_parse_either_parses_or_raises_version_error(text: str) -> None:
    try:
        requirement = Requirement.parse(text)
    except VersionError:
        return
    requirement.allows(Version.parse("1.2.3"))
