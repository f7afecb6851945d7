"""Fleet status and presence: what the device builds, the cloud parses into the same values; bad shapes name the field."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.protocol import health
from edgewise.protocol.health import (
    ChunkInfo,
    ComponentHealth,
    HealthMessage,
    MessageType,
    OverallStatus,
    PresenceMessage,
    StatusMessageError,
    Trigger,
)
from edgewise.topics import filter_matches

_names = st.text(st.characters(codec="utf-8", exclude_characters="/+#"), min_size=1, max_size=20)
_short = st.text(max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_objects = st.dictionaries(st.text(max_size=8), _json, max_size=4)

_components = st.builds(
    ComponentHealth,
    name=st.text(min_size=1, max_size=20),
    version=_short,
    status=st.sampled_from(["NEW", "RUNNING", "FINISHED", "ERRORED", "BROKEN"]),
    is_root=st.booleans(),
    requested_version=st.none() | _short,
    status_details=st.none()
    | st.builds(health.component_status_details, st.lists(_short, max_size=3), _short)
    | _objects,
    fleet_config_arns=st.none() | st.lists(_short, max_size=3).map(tuple),
)
_deployments = (
    st.none()
    | _objects
    | st.builds(
        health.deployment_information,
        status=st.sampled_from(["SUCCEEDED", "FAILED"]),
        configuration_arn=_short,
        deployment_id=_short,
        detailed_status=_short,
        failure_cause=_short,
        error_stack=st.lists(_short, max_size=3),
        error_types=st.lists(_short, max_size=3),
    )
)
_messages = st.builds(
    HealthMessage,
    overall_status=st.sampled_from(OverallStatus),
    timestamp=st.integers(min_value=0, max_value=2**63 - 1),
    message_type=st.sampled_from(MessageType),
    components=st.lists(_components, max_size=5).map(tuple),
    core_version=_short,
    platform=_short,
    architecture=_short,
    deployment=_deployments,
    thing=st.none() | _names,
    sequence_number=st.none() | st.integers(min_value=1, max_value=2**31),
    trigger=st.none() | st.sampled_from(Trigger),
    runtime=st.none() | st.just(health.RUNTIME),
)


def _as_parsed(message: HealthMessage) -> HealthMessage:
    """``message`` as the cloud reads it: without what only the sender uses."""
    components = tuple(dataclasses.replace(c, fleet_config_arns=None) for c in message.components)
    return dataclasses.replace(
        message, components=components, thing=None, sequence_number=None, trigger=None, runtime=None
    )


@given(_names)
def test_topics_name_their_thing_and_match_the_cloud_filters(thing: str) -> None:
    assert health.health_thing(health.health_topic(thing)) == thing
    assert health.presence_thing(health.presence_topic(thing)) == thing
    assert health.presence_thing(health.health_topic(thing)) is None
    assert health.health_thing(health.presence_topic(thing)) is None
    assert filter_matches(health.HEALTH_TOPIC_FILTER, health.health_topic(thing))
    assert filter_matches(health.PRESENCE_TOPIC_FILTER, health.presence_topic(thing))


def test_topics_are_greengrass_and_edgewise_ones() -> None:
    assert health.health_topic("edge-1") == "$aws/things/edge-1/greengrassv2/health/json"
    assert health.presence_topic("edge-1") == "$aws/things/edge-1/edgewise/presence"


@pytest.mark.parametrize(
    "topic",
    [
        "$aws/things/edge-1/greengrassv2/health",
        "$aws/things/edge-1/greengrassv2/health/json/x",
        "aws/things/edge-1/greengrassv2/health/json",
        "$aws/things/edge-1/edgewise/presence/x",
        "$aws/thing/edge-1/edgewise/presence",
        "$aws/things/edge-1/shadow/update",
    ],
)
def test_other_topics_name_no_thing(topic: str) -> None:
    assert health.health_thing(topic) is None
    assert health.presence_thing(topic) is None


@given(_messages)
def test_what_the_device_builds_the_cloud_parses_into_the_same_values(message: HealthMessage) -> None:
    (payload,) = health.encode_health(message)

    assert health.parse_health(payload) == _as_parsed(message)


@given(_messages)
def test_the_sender_fields_are_on_the_wire(message: HealthMessage) -> None:
    (payload,) = health.encode_health(message)
    document = json.loads(payload)

    assert document.get("thing") == message.thing
    assert document.get("sequenceNumber") == message.sequence_number
    assert document.get("trigger") == message.trigger
    assert document.get("runtime") == message.runtime
    assert [c.get("fleetConfigArns") for c in document["components"]] == [
        None if c.fleet_config_arns is None else list(c.fleet_config_arns) for c in message.components
    ]


def test_a_message_is_written_byte_for_byte_as_the_device_always_has() -> None:
    message = HealthMessage(
        core_version="2.12.0",
        platform="linux",
        architecture="amd64",
        runtime=health.RUNTIME,
        thing="edge-1",
        sequence_number=3,
        timestamp=1_000,
        message_type=MessageType.PARTIAL,
        trigger=Trigger.COMPONENT_STATUS_CHANGE,
        overall_status=OverallStatus.UNHEALTHY,
        deployment={"status": "FAILED"},
        components=(
            ComponentHealth(
                name="com.example.App",
                version="1.0.0",
                fleet_config_arns=("arn:a",),
                is_root=True,
                status="BROKEN",
                status_details=health.component_status_details(["RUN_ERROR"], "exit 1"),
            ),
            ComponentHealth(
                name="aws.greengrass.Cli", version="2.12.0", requested_version="2.4.0", status="RUNNING"
            ),
        ),
    )

    assert health.encode_health(message) == [
        b'{"ggcVersion":"2.12.0","platform":"linux","architecture":"amd64","runtime":"edgewise",'
        b'"thing":"edge-1","sequenceNumber":3,"timestamp":1000,"messageType":"PARTIAL",'
        b'"trigger":"COMPONENT_STATUS_CHANGE","overallDeviceStatus":"UNHEALTHY",'
        b'"deploymentInformation":{"status":"FAILED"},"components":['
        b'{"componentName":"com.example.App","version":"1.0.0","fleetConfigArns":["arn:a"],"isRoot":true,'
        b'"status":"BROKEN","componentStatusDetails":{"statusCodes":["RUN_ERROR"],"statusReason":"exit 1"}},'
        b'{"componentName":"aws.greengrass.Cli","version":"2.12.0","isRoot":false,"status":"RUNNING",'
        b'"requestedVersion":"2.4.0"}]}'
    ]


def test_deployment_information_has_greengrass_keys() -> None:
    information = health.deployment_information(
        status="FAILED",
        configuration_arn="arn:c",
        deployment_id="d1",
        detailed_status="FAILED_ROLLBACK_COMPLETE",
        failure_cause="broken",
        error_stack=("A",),
        error_types=("COMPONENT_BROKEN",),
    )

    assert information == {
        "status": "FAILED",
        "fleetConfigurationArnForStatus": "arn:c",
        "deploymentId": "d1",
        "statusDetails": {
            "detailedStatus": "FAILED_ROLLBACK_COMPLETE",
            "failureCause": "broken",
            "errorStack": ["A"],
            "errorTypes": ["COMPONENT_BROKEN"],
        },
        "unchangedRootComponents": [],
    }


def test_a_large_message_splits_into_chunks_the_cloud_reads_back_whole() -> None:
    components = tuple(
        ComponentHealth(name=f"com.example.C{index:05}", version="1.0.0", status="RUNNING", is_root=True)
        for index in range(5000)
    )
    message = HealthMessage(
        overall_status=OverallStatus.HEALTHY, timestamp=7, components=components, sequence_number=4
    )

    payloads = health.encode_health(message)
    parsed = [health.parse_health(payload) for payload in payloads]

    assert len(payloads) > 1
    assert all(len(payload) <= health.MAX_PAYLOAD_BYTES for payload in payloads)
    assert [p.chunk for p in parsed] == [
        ChunkInfo(index, len(payloads)) for index in range(1, len(payloads) + 1)
    ]
    assert tuple(c for p in parsed for c in p.components) == components
    assert {json.loads(payload)["sequenceNumber"] for payload in payloads} == {4}
    assert {dataclasses.replace(p, components=(), chunk=None) for p in parsed} == {
        _as_parsed(dataclasses.replace(message, components=()))
    }


def test_a_chunk_is_not_sent_again_as_it_is() -> None:
    chunk = HealthMessage(overall_status=OverallStatus.HEALTHY, timestamp=1, chunk=ChunkInfo(1, 2))
    with pytest.raises(ValueError, match="chunk"):
        health.encode_health(chunk)


@given(st.booleans(), st.integers(min_value=0, max_value=2**63 - 1))
def test_presence_round_trips(connected: bool, timestamp: int) -> None:
    message = PresenceMessage(connected=connected, timestamp=timestamp)
    assert health.parse_presence(health.encode_presence(message)) == message


def test_presence_is_written_byte_for_byte_as_the_device_always_has() -> None:
    assert health.encode_presence(PresenceMessage(connected=True, timestamp=5)) == (
        b'{"state": "online", "timestamp": 5}'
    )
    assert health.encode_presence(PresenceMessage(connected=False, timestamp=5)) == (
        b'{"state": "offline", "timestamp": 5}'
    )


def test_a_thing_deployment_has_its_own_trigger() -> None:
    assert Trigger.for_group("thing/edge-1") is Trigger.THING_DEPLOYMENT
    assert Trigger.for_group("thinggroup/a") is Trigger.THING_GROUP_DEPLOYMENT
    assert Trigger.for_group(None) is Trigger.THING_GROUP_DEPLOYMENT


def test_what_a_greengrass_nucleus_adds_is_recorded_all_the_same() -> None:
    payload = json.dumps(
        {
            "overallDeviceStatus": "HEALTHY",
            "timestamp": 1,
            "trigger": "LOCAL_DEPLOYMENT",
            "runtime": "aws_nucleus_classic",
            "components": [
                {"componentName": "a", "fleetConfigArns": None, "componentStatusDetails": {"x": 1}}
            ],
        }
    ).encode()

    (component,) = health.parse_health(payload).components

    assert component == ComponentHealth(name="a", status_details={"x": 1})


def _health(**fields: Any) -> bytes:
    message: dict[str, Any] = {"overallDeviceStatus": "HEALTHY", "timestamp": 1, "components": []}
    message.update(fields)
    return json.dumps({key: value for key, value in message.items() if value is not None}).encode()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "payload"),
        (b"\xff", "payload"),
        (b"[]", "payload"),
        (_health(overallDeviceStatus="FINE"), "overallDeviceStatus"),
        (_health(overallDeviceStatus=None), "overallDeviceStatus"),
        (_health(messageType="SOME"), "messageType"),
        (_health(messageType=1), "messageType"),
        (_health(timestamp="yesterday"), "timestamp"),
        (_health(timestamp=-1), "timestamp"),
        (_health(timestamp=2**63), "timestamp"),
        (_health(timestamp=True), "timestamp"),
        (_health(components={"a": 1}), "components"),
        (_health(components=[{"componentName": "a"}] * 10_001), "components"),
        (_health(components=[5]), "components[0]"),
        (_health(components=[{"componentName": "a"}, {"version": "1.0.0"}]), "components[1].componentName"),
        (_health(components=[{"componentName": ""}]), "components[0].componentName"),
        (_health(components=[{"componentName": "a" * 257}]), "components[0].componentName"),
        (_health(components=[{"componentName": "a", "version": 1}]), "components[0].version"),
        (_health(components=[{"componentName": "a", "status": None}]), "components[0].status"),
        (_health(components=[{"componentName": "a", "isRoot": "yes"}]), "components[0].isRoot"),
        (
            _health(components=[{"componentName": "a", "requestedVersion": 2}]),
            "components[0].requestedVersion",
        ),
        (
            _health(components=[{"componentName": "a", "componentStatusDetails": []}]),
            "components[0].componentStatusDetails",
        ),
        (_health(deploymentInformation="done"), "deploymentInformation"),
        (_health(ggcVersion=2), "ggcVersion"),
        (_health(platform="x" * 257), "platform"),
        (_health(architecture=[]), "architecture"),
        (_health(chunkInfo=[1]), "chunkInfo"),
        (_health(chunkInfo={"chunkId": 0, "totalChunks": 1}), "chunkInfo.chunkId"),
        (_health(chunkInfo={"chunkId": True, "totalChunks": 1}), "chunkInfo.chunkId"),
        (_health(chunkInfo={"chunkId": 3, "totalChunks": 2}), "chunkInfo.chunkId"),
        (_health(chunkInfo={"chunkId": 1}), "chunkInfo.totalChunks"),
        (_health(chunkInfo={"chunkId": 1, "totalChunks": 10_001}), "chunkInfo.totalChunks"),
    ],
)
def test_a_bad_health_message_names_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(StatusMessageError) as caught:
        health.parse_health(payload)
    assert caught.value.field == field
    assert repr(field) in str(caught.value)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"{", "payload"),
        (b"1", "payload"),
        (b'{"state": "away", "timestamp": 1}', "state"),
        (b'{"state": [], "timestamp": 1}', "state"),
        (b'{"timestamp": 1}', "state"),
        (b'{"state": "online"}', "timestamp"),
        (b'{"state": "online", "timestamp": 1.5}', "timestamp"),
        (b'{"state": "offline", "timestamp": false}', "timestamp"),
    ],
)
def test_a_bad_presence_message_names_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(StatusMessageError) as caught:
        health.parse_presence(payload)
    assert caught.value.field == field


_health_like = st.fixed_dictionaries(
    {},
    optional={
        "overallDeviceStatus": st.sampled_from(["HEALTHY", "UNHEALTHY", "x"]) | _json,
        "messageType": st.sampled_from(["COMPLETE", "PARTIAL"]) | _json,
        "timestamp": st.integers(min_value=-5, max_value=2**64) | _json,
        "components": st.lists(
            st.fixed_dictionaries(
                {"componentName": st.text(max_size=5) | _json},
                optional={
                    key: _json
                    for key in ("version", "status", "isRoot", "requestedVersion", "componentStatusDetails")
                },
            ),
            max_size=3,
        )
        | _json,
        "deploymentInformation": _json,
        "ggcVersion": _json,
        "chunkInfo": st.fixed_dictionaries(
            {}, optional={"chunkId": st.integers(-1, 3) | _json, "totalChunks": st.integers(-1, 3) | _json}
        )
        | _json,
        "state": st.sampled_from(["online", "offline"]) | _json,
    },
)


@given(st.binary(max_size=64) | _health_like.map(lambda doc: json.dumps(doc).encode()))
def test_parsers_accept_or_name_a_field_for_any_payload(payload: bytes) -> None:
    for parse in (health.parse_health, health.parse_presence):
        try:
            parse(payload)
        except StatusMessageError as exc:
            error = exc
        else:
            continue
        assert error.field
        assert error.problem
