"""The MQTT bridge's configuration in Greengrass's keys: what it accepts, and every bad field refused by name."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.runtime.clientdevices.bridge_settings import (
    DEFAULT_BROKER_URI,
    DEFAULT_CLIENT_ID,
    BridgeSettings,
    Side,
    TopicMapping,
    parse_bridge_settings,
)
from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.names import BRIDGE

#: Greengrass's documented example, as a deployment document has it.
GREENGRASS_EXAMPLE: dict[str, Any] = {
    "mqttTopicMapping": {
        "HelloWorldIotCoreMapping": {
            "topic": "clients/+/hello/world",
            "source": "LocalMqtt",
            "target": "IotCore",
        },
        "ClientShadowsLocalMqttToPubsub": {
            "topic": "$aws/things/+/shadow/#",
            "source": "LocalMqtt",
            "target": "Pubsub",
            "targetTopicPrefix": "local/",
        },
    },
    "mqtt5RouteOptions": {"HelloWorldIotCoreMapping": {"noLocal": True, "retainAsPublished": "false"}},
    "brokerUri": "ssl://localhost:8883",
    "brokerClient": {"version": "mqtt5", "receiveMaximum": "100", "sessionExpiryInterval": 3600},
    "startupTimeoutSeconds": "30",
}


def test_greengrass_example_parses_with_its_values() -> None:
    parsed = parse_bridge_settings(GREENGRASS_EXAMPLE)

    assert parsed.mappings == (
        TopicMapping(
            "HelloWorldIotCoreMapping",
            "clients/+/hello/world",
            Side.LOCAL_MQTT,
            Side.IOT_CORE,
            retain_as_published=False,
        ),
        TopicMapping(
            "ClientShadowsLocalMqttToPubsub", "$aws/things/+/shadow/#", Side.LOCAL_MQTT, Side.PUBSUB, "local/"
        ),
    )
    assert (
        parsed.mappings[1].target_topic("$aws/things/t/shadow/update") == "local/$aws/things/t/shadow/update"
    )
    assert parsed.broker_client.receive_maximum == 100
    assert parsed.broker_client.session_expiry_interval == 3600
    assert parsed.startup_timeout == 30
    assert {side for side in Side if parsed.uses(side)} == set(Side)


def test_empty_configuration_has_greengrass_defaults() -> None:
    empties: list[Any] = [None, {}, {"mqttTopicMapping": {}}, {"mqttTopicMapping": None}]
    for empty in empties:
        parsed = parse_bridge_settings(empty)
        assert parsed == BridgeSettings()
        assert parsed.broker_uri == DEFAULT_BROKER_URI
        assert parsed.client_id == DEFAULT_CLIENT_ID
        assert not parsed.uses(Side.IOT_CORE)


def test_a_mapping_set_to_null_by_a_merge_is_removed() -> None:
    parsed = parse_bridge_settings({"mqttTopicMapping": {"Gone": None, "Kept": {**_mapping()}}})

    assert [mapping.name for mapping in parsed.mappings] == ["Kept"]


def test_broker_server_uri_is_greengrass_older_name() -> None:
    assert (
        parse_bridge_settings({"brokerServerUri": "tcp://127.0.0.1:1883"}).broker_uri
        == "tcp://127.0.0.1:1883"
    )
    both = {"brokerServerUri": "tcp://old:1883", "brokerUri": "ssl://new:8883"}
    assert parse_bridge_settings(both).broker_uri == "ssl://new:8883"


def test_route_options_for_a_source_other_than_local_mqtt_are_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configuration = {
        "mqttTopicMapping": {"Up": _mapping(source="Pubsub", target="IotCore")},
        "mqtt5RouteOptions": {"Up": {"retainAsPublished": False}},
    }
    with caplog.at_level(logging.WARNING):
        parsed = parse_bridge_settings(configuration)

    assert parsed.mappings[0].retain_as_published is True
    assert "mqtt5RouteOptions.Up applies to mappings whose source is LocalMqtt" in caplog.text


def test_no_local_false_is_accepted_with_a_warning_that_the_bridge_never_loops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configuration = {"mqttTopicMapping": {"Up": _mapping()}, "mqtt5RouteOptions": {"Up": {"noLocal": False}}}
    with caplog.at_level(logging.WARNING):
        parse_bridge_settings(configuration)

    assert "noLocal is false" in caplog.text


def _mapping(**changes: Any) -> dict[str, Any]:
    return {"topic": "a/+/b", "source": "LocalMqtt", "target": "IotCore", **changes}


@pytest.mark.parametrize(
    ("configuration", "key", "problem"),
    [
        ([], "(the configuration)", "must be an object"),
        ({"mqttTopicMappings": {}}, "mqttTopicMappings", "is not supported"),
        ({"mqttTopicMapping": []}, "mqttTopicMapping", "must be an object of named mappings"),
        ({"mqttTopicMapping": {"M": "x"}}, "mqttTopicMapping.M", "must be an object"),
        (
            {"mqttTopicMapping": {"M": {**_mapping(), "tagret": "x"}}},
            "mqttTopicMapping.M.tagret",
            "not supported",
        ),
        ({"mqttTopicMapping": {"M": _mapping(topic=None)}}, "mqttTopicMapping.M.topic", "is required"),
        ({"mqttTopicMapping": {"M": _mapping(topic="")}}, "mqttTopicMapping.M.topic", "must not be empty"),
        ({"mqttTopicMapping": {"M": _mapping(topic=7)}}, "mqttTopicMapping.M.topic", "MQTT topic filter"),
        ({"mqttTopicMapping": {"M": _mapping(topic="a/#/b")}}, "mqttTopicMapping.M.topic", "'#'"),
        ({"mqttTopicMapping": {"M": _mapping(topic="a/b+")}}, "mqttTopicMapping.M.topic", "'+'"),
        ({"mqttTopicMapping": {"M": _mapping(topic="a" * 65536)}}, "mqttTopicMapping.M.topic", "longer than"),
        ({"mqttTopicMapping": {"M": _mapping(source="localmqtt")}}, "mqttTopicMapping.M.source", "one of"),
        ({"mqttTopicMapping": {"M": _mapping(target="Cloud")}}, "mqttTopicMapping.M.target", "one of"),
        (
            {"mqttTopicMapping": {"M": _mapping(target="LocalMqtt")}},
            "mqttTopicMapping.M.target",
            "must differ",
        ),
        (
            {"mqttTopicMapping": {"M": _mapping(targetTopicPrefix="p/+/")}},
            "mqttTopicMapping.M.targetTopicPrefix",
            "wildcards",
        ),
        (
            {"mqttTopicMapping": {"M": _mapping(targetTopicPrefix=["p"])}},
            "mqttTopicMapping.M.targetTopicPrefix",
            "must be a string",
        ),
        (
            {"mqttTopicMapping": {"M": _mapping(targetTopicPrefix="p" * 65532)}},
            "mqttTopicMapping.M.targetTopicPrefix",
            "exceed",
        ),
        ({"mqtt5RouteOptions": {"Missing": {}}}, "mqtt5RouteOptions.Missing", "names no mapping"),
        (
            {"mqttTopicMapping": {"M": _mapping()}, "mqtt5RouteOptions": {"M": {"noLocal": "yes"}}},
            "mqtt5RouteOptions.M.noLocal",
            "true or false",
        ),
        (
            {"mqttTopicMapping": {"M": _mapping()}, "mqtt5RouteOptions": {"M": {"retain": True}}},
            "mqtt5RouteOptions.M.retain",
            "not supported",
        ),
        ({"brokerUri": "localhost"}, "brokerUri", "must be a URI"),
        ({"brokerUri": "ssl://localhost:99999"}, "brokerUri", "is not a URI"),
        ({"brokerServerUri": 8883}, "brokerServerUri", "must be a URI"),
        ({"clientId": ""}, "clientId", "non-empty string"),
        ({"startupTimeoutSeconds": 0}, "startupTimeoutSeconds", "from 1 to"),
        ({"startupTimeoutSeconds": "soon"}, "startupTimeoutSeconds", "whole number"),
        ({"brokerClient": {"version": "mqtt4"}}, "brokerClient.version", "mqtt3 or mqtt5"),
        ({"brokerClient": {"receiveMaximum": 70000}}, "brokerClient.receiveMaximum", "from 1 to 65535"),
        ({"brokerClient": {"maximumPacketSize": 0}}, "brokerClient.maximumPacketSize", "from 1 to"),
        ({"brokerClient": {"sessionExpiryInterval": -1}}, "brokerClient.sessionExpiryInterval", "from 0 to"),
        ({"brokerClient": {"keepAlive": 5}}, "brokerClient.keepAlive", "not supported"),
    ],
)
def test_a_bad_field_is_refused_naming_its_key(configuration: Any, key: str, problem: str) -> None:
    with pytest.raises(ClientDeviceConfigurationError) as caught:
        parse_bridge_settings(configuration)

    assert caught.value.component == BRIDGE
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{BRIDGE} configuration {key} ")


_SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12)
_TOPIC_TEXT = st.text(alphabet="ab/+#$\0", max_size=10)
_FIELD = st.sampled_from(["topic", "source", "target", "targetTopicPrefix", "other"])
_MAPPING_BODY = st.dictionaries(
    _FIELD, _SCALARS | _TOPIC_TEXT | st.sampled_from([s.value for s in Side]), max_size=5
)
_CONFIG = st.dictionaries(
    st.sampled_from(
        [
            "mqttTopicMapping",
            "mqtt5RouteOptions",
            "brokerUri",
            "clientId",
            "brokerClient",
            "startupTimeoutSeconds",
            "x",
        ]
    ),
    _SCALARS
    | st.dictionaries(st.sampled_from(["M", "N", ""]), _MAPPING_BODY | _SCALARS, max_size=3)
    | st.dictionaries(
        st.sampled_from(["version", "receiveMaximum", "noLocal", "retainAsPublished"]), _SCALARS, max_size=3
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(_CONFIG)
def test_any_configuration_shape_parses_or_is_refused_naming_a_key(configuration: dict[str, Any]) -> None:
    refused: ClientDeviceConfigurationError | None = None
    try:
        parsed = parse_bridge_settings(configuration)
    except ClientDeviceConfigurationError as error:
        refused = error
    if refused is not None:
        assert refused.key
        assert refused.component == BRIDGE
        return
    for mapping in parsed.mappings:
        assert mapping.source is not mapping.target
        assert mapping.name in configuration["mqttTopicMapping"]


def test_a_deployment_with_a_bad_bridge_mapping_is_refused_naming_the_field() -> None:
    from edgewise.aws_components import BUILTIN_VERSIONS
    from edgewise.protocol.deployment import ConfigurationUpdate
    from edgewise.runtime.deployment.document import DeploymentDocument
    from edgewise.runtime.deployment.errors import DeploymentError
    from edgewise.runtime.deployment.plan import plan_services
    from edgewise.runtime.deployment.resolution import resolve

    roots = {BRIDGE: BUILTIN_VERSIONS[BRIDGE]}
    resolution = resolve(roots, {}, builtins=BUILTIN_VERSIONS)
    platform = {"os": "linux", "architecture": "amd64"}

    def plan(merge: dict[str, Any]) -> dict[str, Any]:
        document = DeploymentDocument(
            "d-1", components_to_add=roots, configuration={BRIDGE: ConfigurationUpdate(merge=merge)}
        )
        return plan_services({}, resolution, document, roots=roots, platform=platform)

    planned = plan(GREENGRASS_EXAMPLE)
    assert "HelloWorldIotCoreMapping" in planned[BRIDGE]["configuration"]["mqttTopicMapping"]
    with pytest.raises(DeploymentError) as caught:
        plan({"mqttTopicMapping": {"ClientShadows": _mapping(source="Shadow")}})
    assert "mqttTopicMapping.ClientShadows.source" in str(caught.value)
    assert caught.value.error_types == ("COMPONENT_CONFIGURATION_REJECTED",)
