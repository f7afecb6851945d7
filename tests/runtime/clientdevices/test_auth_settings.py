"""The Auth and local broker configurations in Greengrass's keys: what they grant (client ids, Mosquitto ACL
lines) and every bad field refused by its dotted key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edgewise.runtime.clientdevices.auth_settings import AuthSettings, parse_auth_settings
from edgewise.runtime.clientdevices.broker_settings import BrokerSettings, parse_broker_settings
from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.names import AUTH, EMQX, MOQUETTE

GREENGRASS_EXAMPLE: dict[str, Any] = {
    "deviceGroups": {
        "formatVersion": "2021-03-05",
        "definitions": {
            "MyDeviceGroup": {
                "selectionRule": "thingName: MyClientDevice* OR thingName: MyOtherClientDevice*",
                "policyName": "MyClientDevicePolicy",
            },
            "Gateways": {"selectionRule": "thingName: gw-1", "policyName": "GatewayPolicy"},
        },
        "policies": {
            "MyClientDevicePolicy": {
                "AllowConnect": {
                    "statementDescription": "Allow client devices to connect.",
                    "operations": ["mqtt:connect"],
                    "resources": ["mqtt:clientId:${iot:Connection.Thing.ThingName}", "mqtt:clientId:spare-*"],
                },
                "AllowPublish": {
                    "operations": ["mqtt:publish"],
                    "resources": [
                        "mqtt:topic:clients/${iot:Connection.Thing.ThingName}/*",
                        "mqtt:topic:status/*/online",
                        "mqtt:topic:$aws/things/${iot:Connection.Thing.ThingName}/shadow/*",
                    ],
                },
                "AllowSubscribe": {
                    "operations": ["mqtt:subscribe"],
                    "resources": ["mqtt:topicfilter:commands/+/all", "mqtt:topicfilter:clients/#"],
                },
            },
            "GatewayPolicy": {"All": {"operations": ["*"], "resources": ["*"]}},
        },
    },
    "certificates": {"serverCertificateValiditySeconds": 172800},
    "security": {"clientDeviceTrustDurationMinutes": "60"},
    "performance": {
        "maxActiveAuthTokens": 2500,
        "cloudRequestQueueSize": 100,
        "maxConcurrentCloudRequests": 1,
    },
    "metrics": {"disableMetrics": True},
}


def test_the_greengrass_example_grants_client_ids_and_renders_acl_lines() -> None:
    settings = parse_auth_settings(GREENGRASS_EXAMPLE)

    assert (settings.server_certificate_validity, settings.trust_duration) == (172800, 3600)
    assert settings.may_connect("MyClientDevice1", "MyClientDevice1")
    assert settings.may_connect("MyClientDevice1", "spare-7")
    assert not settings.may_connect("MyClientDevice1", "MyClientDevice2")
    assert not settings.may_connect("stranger", "stranger")
    assert settings.acl_lines("MyClientDevice1") == [
        "topic write clients/MyClientDevice1/#",
        "topic write status/+/online",
        "topic write $aws/things/MyClientDevice1/shadow/#",
        "topic read commands/+/all",
        "topic read clients/#",
    ]
    assert settings.acl_lines("stranger") == []
    # '*' in Greengrass matches '$aws/...' too, which MQTT's '#' does not.
    assert settings.may_connect("gw-1", "anything")
    assert settings.acl_lines("gw-1") == [
        "topic write #",
        "topic write $aws/#",
        "topic read #",
        "topic read $aws/#",
    ]


def test_nothing_configured_grants_nothing_with_greengrass_defaults() -> None:
    assert parse_auth_settings(None) == parse_auth_settings({}) == AuthSettings()
    assert AuthSettings().server_certificate_validity == 604800
    assert AuthSettings().trust_duration == 1440 * 60


def _with(path: str, value: Any) -> dict[str, Any]:
    configuration = copy.deepcopy(GREENGRASS_EXAMPLE)
    *parents, last = path.split("/")
    node = configuration
    for name in parents:
        node = node[name]
    node[last] = value
    return configuration


POLICY = "deviceGroups/policies/MyClientDevicePolicy"
KEY_POLICY = "deviceGroups.policies.MyClientDevicePolicy"


@pytest.mark.parametrize(
    ("path", "value", "key", "problem"),
    [
        ("deviceGroups/formatVersion", "2020-01-01", "deviceGroups.formatVersion", "must be '2021-03-05'"),
        ("deviceGroups/junk", 1, "deviceGroups.junk", "is not supported"),
        ("deviceGroups/definitions/MyDeviceGroup/selectionRule", "thingName: a*b",
         "deviceGroups.definitions.MyDeviceGroup.selectionRule", "where a term"),
        ("deviceGroups/definitions/MyDeviceGroup/policyName", "Nope",
         "deviceGroups.definitions.MyDeviceGroup.policyName", "must name a policy"),
        ("deviceGroups/definitions/MyDeviceGroup", "x", "deviceGroups.definitions.MyDeviceGroup", "must be an object"),
        (f"{POLICY}/AllowConnect/operations", ["mqtt:dance"], f"{KEY_POLICY}.AllowConnect.operations[0]",
         "must be one of"),
        (f"{POLICY}/AllowConnect/operations", [], f"{KEY_POLICY}.AllowConnect.operations", "non-empty list"),
        (f"{POLICY}/AllowConnect/resources", ["arn:aws:iot:x"], f"{KEY_POLICY}.AllowConnect.resources[0]",
         "must be *, mqtt:clientId"),
        (f"{POLICY}/AllowPublish/resources", ["mqtt:topic:a/b*/c"], f"{KEY_POLICY}.AllowPublish.resources[0]",
         "inside the level 'b*'"),
        (f"{POLICY}/AllowPublish/resources", ["mqtt:topic:a/#/c"], f"{KEY_POLICY}.AllowPublish.resources[0]",
         "'#' before its last level"),
        (f"{POLICY}/AllowPublish/resources", ["mqtt:topic:${iot:ClientId}/x"],
         f"{KEY_POLICY}.AllowPublish.resources[0]", "the only policy variable"),
        (f"{POLICY}/AllowPublish/resources", ["mqtt:topic:a b"], f"{KEY_POLICY}.AllowPublish.resources[0]",
         "white space"),
        (f"{POLICY}/AllowPublish/statementDescription", 5, f"{KEY_POLICY}.AllowPublish.statementDescription",
         "must be a string"),
        (f"{POLICY}/AllowPublish/effect", "Allow", f"{KEY_POLICY}.AllowPublish.effect", "is not supported"),
        ("certificates/serverCertificateValiditySeconds", 100, "certificates.serverCertificateValiditySeconds",
         "from 172800 to 864000"),
        ("security/clientDeviceTrustDurationMinutes", "soon", "security.clientDeviceTrustDurationMinutes",
         "whole number"),
        ("certificateAuthority", {"certificateUri": "file:///ca.pem"}, "certificateAuthority", "is not supported"),
        ("junk", True, "junk", "is not supported"),
    ],
)  # fmt: skip
def test_every_bad_field_is_refused_naming_its_key(path: str, value: Any, key: str, problem: str) -> None:
    with pytest.raises(ClientDeviceConfigurationError) as caught:
        parse_auth_settings(_with(path, value))
    assert (caught.value.component, caught.value.key) == (AUTH, key)
    assert problem in caught.value.problem
    assert str(caught.value) == f"{AUTH} configuration {key} {caught.value.problem}"


def test_a_configuration_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ClientDeviceConfigurationError, match="must be an object, not list"):
        parse_auth_settings([])


# -- the local broker -----------------------------------------------------------------------------------


def test_moquette_keys_map_and_its_own_tuning_keys_are_ignored() -> None:
    settings = parse_broker_settings(
        {
            "moquette": {
                "ssl_port": "9883",
                "host": "127.0.0.1",
                "netty.epoll": True,
                "netty.mqtt.message_size": 65536,
            }
        }
    )
    assert settings == BrokerSettings(MOQUETTE, "127.0.0.1", 9883, 65536, ("moquette.netty.epoll",))
    assert parse_broker_settings(None) == BrokerSettings()


def test_emqx_listener_bind_maps_and_the_rest_is_ignored() -> None:
    settings = parse_broker_settings(
        {
            "emqxConfig": {
                "listeners": {"ssl": {"default": {"bind": "0.0.0.0:9884", "ssl_options": {}}}},
                "mqtt": {},
            },
            "authorizationMode": "enabled",
        },
        EMQX,
    )
    assert (settings.component, settings.host, settings.port) == (EMQX, "0.0.0.0", 9884)
    assert settings.ignored == (
        "authorizationMode",
        "emqxConfig.listeners.ssl.default.ssl_options",
        "emqxConfig.mqtt",
    )
    assert parse_broker_settings({"emqx": {"listener.ssl.external": "8885"}}, EMQX).port == 8885


@pytest.mark.parametrize(
    ("component", "configuration", "key"),
    [
        (MOQUETTE, {"moquette": {"ssl_port": 0}}, "moquette.ssl_port"),
        (MOQUETTE, {"moquette": {"ssl_port": "port"}}, "moquette.ssl_port"),
        (MOQUETTE, {"moquette": {"host": "example.com"}}, "moquette.host"),
        (MOQUETTE, {"moquette": {"netty.mqtt.message_size": 10}}, "moquette.netty.mqtt.message_size"),
        (MOQUETTE, {"moquette": []}, "moquette"),
        (MOQUETTE, {"emqxConfig": {}}, "emqxConfig"),
        (EMQX, {"emqxConfig": {"listeners": {"ssl": {"default": {"bind": "0.0.0.0:99999"}}}}},
         "emqxConfig.listeners.ssl.default.bind"),
        (EMQX, {"emqx": {"listener.ssl.external": "x"}}, "emqx.listener.ssl.external"),
        (EMQX, {"moquette": {}}, "moquette"),
    ],
)  # fmt: skip
def test_a_bad_broker_field_is_refused_naming_its_key(component: str, configuration: Any, key: str) -> None:
    with pytest.raises(ClientDeviceConfigurationError) as caught:
        parse_broker_settings(configuration, component)
    assert (caught.value.component, caught.value.key) == (component, key)
