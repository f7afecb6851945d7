"""Platform detection and manifest selection."""

from __future__ import annotations

import platform as host
from pathlib import Path

import pytest

from edgewise.recipe import Manifest, Recipe, detect_platform, load_recipe, platform_matches, select_manifest

FIXTURES = Path(__file__).parent / "fixtures"
MULTI = load_recipe(FIXTURES / "multi_platform.yaml")


def manifest_name(recipe: Recipe, platform: dict[str, str]) -> str | None:
    manifest = select_manifest(recipe, platform)
    return None if manifest is None else manifest.name


def test_detect_platform_reports_this_machine() -> None:
    detected = detect_platform()

    assert detected["os"] == "linux"  # the test machines are Linux
    expected = {"x86_64": "amd64", "aarch64": "aarch64"}.get(host.machine(), detected["architecture"])
    assert detected["architecture"] == expected
    if host.machine() not in ("armv6l", "armv7l", "armv8l"):
        assert "architecture.detail" not in detected


def test_platform_overrides_win_and_can_add_attributes() -> None:
    detected = detect_platform({"os": "ubuntu", "gpu": "nvidia"})

    assert detected["os"] == "ubuntu"
    assert detected["gpu"] == "nvidia"
    assert detected["architecture"] == detect_platform()["architecture"]


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ({"os": "linux", "architecture": "arm", "architecture.detail": "armv7l"}, "32-bit ARM v7 only"),
        ({"os": "linux", "architecture": "arm", "architecture.detail": "armv6l"}, "Any other Linux"),
        ({"os": "linux", "architecture": "aarch64"}, "64-bit Linux"),
        ({"os": "darwin", "architecture": "amd64"}, "64-bit Linux"),
        ({"os": "linux", "architecture": "x86"}, "Any other Linux"),
        ({"os": "linux"}, "Any other Linux"),
        ({"os": "windows", "architecture": "amd64"}, None),
        ({"os": "linuxish", "architecture": "amd64"}, None),
        ({}, None),
    ],
)
def test_the_first_matching_manifest_wins(platform: dict[str, str], expected: str | None) -> None:
    assert manifest_name(MULTI, platform) == expected


def test_regex_values_must_match_the_whole_device_value() -> None:
    assert platform_matches({"architecture": "/arm/"}, {"architecture": "arm"})
    assert not platform_matches({"architecture": "/arm/"}, {"architecture": "armv7"})
    assert platform_matches({"architecture": "/arm.*/"}, {"architecture": "armv7"})
    assert not platform_matches({"architecture": "/arm.*/"}, {})


@pytest.mark.parametrize("wildcard", ["all", "any"])
def test_all_and_any_are_wildcards_only_for_os_and_architecture(wildcard: str) -> None:
    assert platform_matches(
        {"os": wildcard, "architecture": wildcard}, {"os": "linux", "architecture": "x86"}
    )
    assert not platform_matches({"os": wildcard}, {})
    assert not platform_matches({"flavour": wildcard}, {"flavour": "vanilla"})
    assert platform_matches({"flavour": wildcard}, {"flavour": wildcard})


def test_star_matches_even_a_missing_attribute() -> None:
    assert platform_matches({"gpu": "*"}, {"os": "linux"})


def test_values_are_compared_exactly() -> None:
    assert not platform_matches({"os": "Linux"}, {"os": "linux"})
    assert not platform_matches({"os": ""}, {"os": ""})
    assert not platform_matches({"os": "-linux"}, {"os": "-linux"})
    assert platform_matches({"os.version": "22"}, {"os.version": "22"})


def test_an_empty_platform_matches_every_device() -> None:
    recipe = Recipe(name="a", version="1.0.0", manifests=(Manifest(name="first"), Manifest(name="second")))

    assert manifest_name(recipe, {}) == "first"
    assert manifest_name(recipe, {"os": "windows"}) == "first"


def test_a_recipe_without_manifests_gets_one_that_matches_everything() -> None:
    recipe = Recipe(name="a", version="1.0.0", global_lifecycle={"Run": "echo"})

    manifest = select_manifest(recipe, {"os": "windows"})

    assert manifest == Manifest()
