"""``aws.greengrass.ShadowManager`` configuration in Greengrass's keys: defaults, the shapes Greengrass's
documentation writes (strings for numbers and booleans, the list and the map of things), and each bad field
refused by its dotted key, here and when a deployment is planned."""

from __future__ import annotations

from typing import Any

import pytest

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.protocol.deployment import ConfigurationUpdate
from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.errors import DeploymentError
from edgewise.runtime.deployment.plan import plan_services
from edgewise.runtime.deployment.resolution import resolve
from edgewise.runtime.shadow.settings import (
    SHADOW_MANAGER,
    RateLimits,
    ShadowConfigurationError,
    ShadowKey,
    ShadowSyncSettings,
    SyncDirection,
    ThingShadows,
    parse_shadow_settings,
)


def test_no_configuration_means_local_shadows_only_with_greengrass_defaults() -> None:
    configurations: tuple[dict[str, Any] | None, ...] = (None, {})
    for configuration in configurations:
        settings = parse_shadow_settings(configuration)

        assert settings == ShadowSyncSettings()
        assert settings.synchronize is None
        assert settings.rate_limits == RateLimits(100, 200, 20)
        assert settings.size_limit == 8192
        assert not settings.periodic


def test_the_documented_example_with_strings_for_numbers_and_booleans() -> None:
    settings = parse_shadow_settings(
        {
            "strategy": {"type": "periodic", "delay": "30"},
            "synchronize": {
                "coreThing": {"classic": "true", "namedShadows": ["MyCoreShadow"]},
                "shadowDocuments": [
                    {
                        "thingName": "MyDevice1",
                        "classic": "false",
                        "namedShadows": ["MyShadowA", "MyShadowB"],
                    },
                    {"thingName": "MyDevice2"},
                ],
                "direction": "deviceToCloud",
            },
            "rateLimits": {
                "maxOutboundSyncUpdatesPerSecond": "50",
                "maxTotalLocalRequestsRate": 100,
                "maxLocalRequestsPerSecondPerThing": "10",
            },
            "shadowDocumentSizeLimitBytes": "30720",
        }
    )

    assert settings.periodic
    assert settings.delay == 30
    assert settings.rate_limits == RateLimits(50, 100, 10)
    assert settings.size_limit == 30720
    targets = settings.synchronize
    assert targets is not None
    assert targets.direction is SyncDirection.DEVICE_TO_CLOUD
    assert targets.shadows("core-1") == (
        ShadowKey("MyDevice1", "MyShadowA"),
        ShadowKey("MyDevice1", "MyShadowB"),
        ShadowKey("MyDevice2", ""),
        ShadowKey("core-1", ""),
        ShadowKey("core-1", "MyCoreShadow"),
    )


def test_the_map_form_merges_with_the_list_and_core_thing_absent_syncs_none_of_its_shadows() -> None:
    settings = parse_shadow_settings(
        {
            "synchronize": {
                "shadowDocuments": [{"thingName": "T", "classic": False, "namedShadows": ["a"]}],
                "shadowDocumentsMap": {"T": {"classic": False, "namedShadows": ["b"]}, "U": {}},
            }
        }
    )

    targets = settings.synchronize
    assert targets is not None
    assert targets.core is None
    assert dict(targets.things) == {"T": ThingShadows(False, ("a", "b")), "U": ThingShadows(True, ())}
    assert targets.direction is SyncDirection.BETWEEN_DEVICE_AND_CLOUD
    assert targets.shadows("core") == (ShadowKey("T", "a"), ShadowKey("T", "b"), ShadowKey("U", ""))


def test_an_empty_synchronize_section_syncs_nothing_but_is_not_local_only() -> None:
    targets = parse_shadow_settings({"synchronize": {}}).synchronize

    assert targets is not None
    assert targets.shadows("core") == ()


def test_core_thing_defaults_to_its_classic_shadow_and_joins_an_entry_for_the_same_thing() -> None:
    targets = parse_shadow_settings(
        {
            "synchronize": {
                "coreThing": {},
                "shadowDocumentsMap": {"core": {"classic": False, "namedShadows": ["n"]}},
            }
        }
    ).synchronize

    assert targets is not None
    assert targets.shadows("core") == (ShadowKey("core", ""), ShadowKey("core", "n"))


@pytest.mark.parametrize(
    ("value", "direction"),
    [
        ("betweenDeviceAndCloud", SyncDirection.BETWEEN_DEVICE_AND_CLOUD),
        ("cloudToDevice", SyncDirection.CLOUD_TO_DEVICE),
        ("DEVICETOCLOUD", SyncDirection.DEVICE_TO_CLOUD),
    ],
)
def test_directions(value: str, direction: SyncDirection) -> None:
    targets = parse_shadow_settings({"synchronize": {"direction": value}}).synchronize

    assert targets is not None
    assert targets.direction is direction
    assert direction.pushes == (direction is not SyncDirection.CLOUD_TO_DEVICE)
    assert direction.pulls == (direction is not SyncDirection.DEVICE_TO_CLOUD)


@pytest.mark.parametrize(
    ("configuration", "key"),
    [
        ([], ""),
        ({"synchronise": {}}, "synchronise"),
        ({"synchronize": []}, "synchronize"),
        ({"synchronize": {"coreThings": {}}}, "synchronize.coreThings"),
        ({"synchronize": {"coreThing": {"classic": "yes"}}}, "synchronize.coreThing.classic"),
        ({"synchronize": {"coreThing": {"namedShadows": "a"}}}, "synchronize.coreThing.namedShadows"),
        (
            {"synchronize": {"coreThing": {"namedShadows": ["ok", ""]}}},
            "synchronize.coreThing.namedShadows[1]",
        ),
        ({"synchronize": {"coreThing": {"namedShadows": ["a/b"]}}}, "synchronize.coreThing.namedShadows[0]"),
        ({"synchronize": {"coreThing": {"thingName": "x"}}}, "synchronize.coreThing.thingName"),
        ({"synchronize": {"shadowDocuments": {}}}, "synchronize.shadowDocuments"),
        (
            {"synchronize": {"shadowDocuments": [{"classic": True}]}},
            "synchronize.shadowDocuments[0].thingName",
        ),
        (
            {"synchronize": {"shadowDocuments": [{"thingName": "a"}, {"thingName": "b#"}]}},
            "synchronize.shadowDocuments[1].thingName",
        ),
        (
            {"synchronize": {"shadowDocuments": [{"thingName": "a", "shadows": []}]}},
            "synchronize.shadowDocuments[0].shadows",
        ),
        ({"synchronize": {"shadowDocumentsMap": []}}, "synchronize.shadowDocumentsMap"),
        ({"synchronize": {"shadowDocumentsMap": {"a b": {}}}}, "synchronize.shadowDocumentsMap.a b"),
        ({"synchronize": {"shadowDocumentsMap": {"T": []}}}, "synchronize.shadowDocumentsMap.T"),
        (
            {"synchronize": {"shadowDocumentsMap": {"T": {"classic": 1}}}},
            "synchronize.shadowDocumentsMap.T.classic",
        ),
        ({"synchronize": {"direction": "both"}}, "synchronize.direction"),
        ({"synchronize": {"direction": 1}}, "synchronize.direction"),
        ({"strategy": "periodic"}, "strategy"),
        ({"strategy": {"type": "sometimes"}}, "strategy.type"),
        ({"strategy": {"type": "periodic", "delay": "0"}}, "strategy.delay"),
        ({"strategy": {"type": "periodic", "delay": "soon"}}, "strategy.delay"),
        ({"strategy": {"kind": "periodic"}}, "strategy.kind"),
        (
            {"rateLimits": {"maxOutboundSyncUpdatesPerSecond": -1}},
            "rateLimits.maxOutboundSyncUpdatesPerSecond",
        ),
        ({"rateLimits": {"maxTotalLocalRequestsRate": 1.5}}, "rateLimits.maxTotalLocalRequestsRate"),
        (
            {"rateLimits": {"maxLocalRequestsPerSecondPerThing": True}},
            "rateLimits.maxLocalRequestsPerSecondPerThing",
        ),
        ({"rateLimits": {"maxRequests": 1}}, "rateLimits.maxRequests"),
        ({"shadowDocumentSizeLimitBytes": 30721}, "shadowDocumentSizeLimitBytes"),
        ({"shadowDocumentSizeLimitBytes": "0"}, "shadowDocumentSizeLimitBytes"),
        ({"shadowDocumentSizeLimitBytes": "big"}, "shadowDocumentSizeLimitBytes"),
    ],
)
def test_each_bad_field_is_named(configuration: Any, key: str) -> None:
    with pytest.raises(ShadowConfigurationError) as caught:
        parse_shadow_settings(configuration)

    assert caught.value.key == key
    assert str(caught.value).startswith(f"{SHADOW_MANAGER} configuration {key} ")


def test_a_deployment_with_a_bad_shadow_manager_configuration_is_refused_naming_the_field() -> None:
    roots = {SHADOW_MANAGER: "2.3.0"}
    resolution = resolve(roots, {}, builtins=BUILTIN_VERSIONS)

    def plan(merge: dict[str, Any]) -> dict[str, Any]:
        document = DeploymentDocument(
            "d-1", components_to_add=roots, configuration={SHADOW_MANAGER: ConfigurationUpdate(merge=merge)}
        )
        return plan_services({}, resolution, document, roots=roots, platform={"os": "linux"})

    planned = plan({"synchronize": {"coreThing": {"classic": "true"}}})
    assert planned[SHADOW_MANAGER]["configuration"]["synchronize"]["coreThing"]["classic"] == "true"
    with pytest.raises(DeploymentError) as caught:
        plan({"synchronize": {"direction": "sideways"}})
    assert "synchronize.direction" in str(caught.value)
    assert caught.value.error_types == ("COMPONENT_CONFIGURATION_REJECTED",)
