"""Fleet provisioning by claim's topics and payloads: every template name makes a RegisterThing topic the cloud reads
back, a device takes a reply only when it is a JSON object on one of its request's reply topics, what either side
builds the other parses back unchanged, and a payload of the wrong shape is refused naming the field's path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.protocol.provisioning import (
    CREATE_FROM_CSR_TOPIC,
    CREATE_TOPIC,
    TEMPLATE_NAME_PATTERN,
    CreateCertificateAccepted,
    CreateCertificateFromCsrRequest,
    CreateKeysAndCertificateRequest,
    Outcome,
    ProvisioningPayloadError,
    ProvisioningRejection,
    RegisterThingAccepted,
    RegisterThingRequest,
    build_create_accepted,
    build_create_from_csr_request,
    build_create_keys_request,
    build_register_accepted,
    build_register_request,
    build_rejection,
    parse_create_accepted,
    parse_create_from_csr_request,
    parse_create_keys_request,
    parse_register_accepted,
    parse_register_request,
    parse_rejection,
    provision_topic,
    read_reply,
    reply_topic,
    template_name,
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
)


@given(template=st.from_regex(TEMPLATE_NAME_PATTERN, fullmatch=True))
def test_the_cloud_reads_back_the_template_of_every_provision_topic(template: str) -> None:
    assert template_name(provision_topic(template)) == template


@pytest.mark.parametrize("template", ["", "a/b", "+", "#", "x" * 37, "sensors/provision/json"])
def test_a_template_that_is_no_name_makes_no_topic(template: str) -> None:
    with pytest.raises(ValueError, match="template"):
        provision_topic(template)


@pytest.mark.parametrize(
    "topic",
    [
        CREATE_TOPIC,
        CREATE_FROM_CSR_TOPIC,
        "$aws/provisioning-templates/t/provision",
        "$aws/things/t/provision/json",
    ],
)
def test_other_topics_name_no_template(topic: str) -> None:
    assert template_name(topic) is None


@given(
    topic=st.sampled_from(
        [f"{CREATE_TOPIC}/accepted", f"{CREATE_TOPIC}/rejected", CREATE_TOPIC, "x/accepted"]
    )
    | st.text(),
    payload=st.binary() | JSON_VALUES.map(lambda value: json.dumps(value).encode()),
)
def test_read_reply_takes_only_json_objects_on_the_reply_topics(topic: str, payload: bytes) -> None:
    reply = read_reply(CREATE_TOPIC, topic, payload)
    if reply is not None:
        outcome, answer = reply
        assert topic == f"{CREATE_TOPIC}/{outcome}"
        assert topic == reply_topic(CREATE_TOPIC, outcome)
        assert isinstance(answer, dict)


def test_read_reply_survives_deeply_nested_json() -> None:
    assert read_reply(CREATE_TOPIC, f"{CREATE_TOPIC}/accepted", b"[" * 100_000) is None


TEXT = st.text(min_size=1)
CREATE_ACCEPTED = st.builds(
    CreateCertificateAccepted,
    certificate_id=TEXT,
    certificate_pem=TEXT,
    certificate_ownership_token=TEXT,
    private_key=st.none() | TEXT,
)
REGISTER_REQUESTS = st.builds(
    RegisterThingRequest,
    certificate_ownership_token=st.text(),
    parameters=st.dictionaries(st.text(), st.text(), max_size=4),
)
REGISTER_ACCEPTED = st.builds(
    RegisterThingAccepted,
    thing_name=TEXT,
    device_configuration=st.dictionaries(st.text(), st.text(), max_size=4),
)
REJECTIONS = st.builds(
    ProvisioningRejection, status_code=st.integers(), error_code=TEXT, error_message=st.text()
)
NOT_TEXT = JSON_VALUES.filter(lambda value: not isinstance(value, str) or not value)


def reply(request_topic: str, outcome: Outcome, payload: bytes) -> dict[str, Any]:
    """What the device reads from ``payload`` arriving on ``request_topic``'s ``outcome`` topic."""
    read = read_reply(request_topic, reply_topic(request_topic, outcome), payload)
    assert read is not None
    assert read[0] == outcome
    return read[1]


def test_what_the_device_asks_for_a_key_the_cloud_reads() -> None:
    request = CreateKeysAndCertificateRequest()
    assert build_create_keys_request(request) == b"{}"
    assert parse_create_keys_request(build_create_keys_request(request)) == request


@pytest.mark.parametrize("payload", [b"", b"  \n", b'{"anything": 1}'])
def test_a_key_request_is_empty_or_any_object(payload: bytes) -> None:
    assert parse_create_keys_request(payload) == CreateKeysAndCertificateRequest()


@given(csr=TEXT)
def test_what_the_device_asks_for_a_csr_the_cloud_reads(csr: str) -> None:
    request = CreateCertificateFromCsrRequest(csr)
    payload = build_create_from_csr_request(request)
    assert json.loads(payload) == {"certificateSigningRequest": csr}
    assert parse_create_from_csr_request(payload) == request


@given(accepted=CREATE_ACCEPTED)
def test_the_certificate_the_cloud_sends_the_device_reads(accepted: CreateCertificateAccepted) -> None:
    payload = build_create_accepted(accepted)
    expected = {
        "certificateId": accepted.certificate_id,
        "certificatePem": accepted.certificate_pem,
        "certificateOwnershipToken": accepted.certificate_ownership_token,
    }
    if accepted.private_key is not None:
        expected["privateKey"] = accepted.private_key
    assert json.loads(payload) == expected
    assert parse_create_accepted(reply(CREATE_TOPIC, "accepted", payload)) == accepted


@given(request=REGISTER_REQUESTS)
def test_the_registration_the_device_sends_the_cloud_reads(request: RegisterThingRequest) -> None:
    payload = build_register_request(request)
    body = json.loads(payload)
    assert body["certificateOwnershipToken"] == request.certificate_ownership_token
    # Like awsiotsdk's RegisterThingRequest: no parameters, no key.
    assert ("parameters" in body) == bool(request.parameters)
    assert parse_register_request(payload) == request


@given(accepted=REGISTER_ACCEPTED)
def test_the_thing_the_cloud_registers_the_device_reads(accepted: RegisterThingAccepted) -> None:
    payload = build_register_accepted(accepted)
    assert json.loads(payload) == {
        "thingName": accepted.thing_name,
        "deviceConfiguration": accepted.device_configuration,
    }
    assert parse_register_accepted(reply(provision_topic("t"), "accepted", payload)) == accepted


@given(rejection=REJECTIONS)
def test_the_rejection_the_cloud_sends_the_device_reads(rejection: ProvisioningRejection) -> None:
    payload = build_rejection(rejection)
    assert set(json.loads(payload)) == {"statusCode", "errorCode", "errorMessage"}
    assert parse_rejection(reply(CREATE_TOPIC, "rejected", payload)) == rejection


@given(body=st.dictionaries(st.text(max_size=5) | st.sampled_from(["statusCode", "errorCode"]), JSON_VALUES))
def test_any_rejected_reply_reads_as_a_rejection(body: dict[str, Any]) -> None:
    rejection = parse_rejection(body)
    assert isinstance(rejection.status_code, int)
    assert rejection.error_code
    assert isinstance(rejection.error_message, str)


@given(
    payload=st.binary()
    | JSON_VALUES.filter(lambda value: not isinstance(value, dict)).map(
        lambda value: json.dumps(value).encode()
    )
)
def test_a_request_that_is_no_json_object_is_refused_as_a_whole(payload: bytes) -> None:
    parsers = [parse_create_from_csr_request, parse_register_request]
    if payload.strip():
        parsers.append(parse_create_keys_request)
    for parse in parsers:
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        if isinstance(body, dict):
            continue
        with pytest.raises(ProvisioningPayloadError) as refused:
            parse(payload)
        assert refused.value.field is None


@given(csr=NOT_TEXT)
def test_a_csr_request_without_a_csr_names_the_field(csr: Any) -> None:
    with pytest.raises(ProvisioningPayloadError) as refused:
        parse_create_from_csr_request(json.dumps({"certificateSigningRequest": csr}).encode())
    assert refused.value.field == "certificateSigningRequest"


@given(token=JSON_VALUES.filter(lambda value: value is not None and not isinstance(value, str)))
def test_a_registration_whose_token_is_no_string_names_the_field(token: Any) -> None:
    with pytest.raises(ProvisioningPayloadError) as refused:
        parse_register_request(json.dumps({"certificateOwnershipToken": token}).encode())
    assert refused.value.field == "certificateOwnershipToken"


@given(parameters=JSON_VALUES.filter(lambda value: bool(value) and not isinstance(value, dict)))
def test_a_registration_whose_parameters_are_no_object_names_the_field(parameters: Any) -> None:
    with pytest.raises(ProvisioningPayloadError) as refused:
        parse_register_request(
            json.dumps({"certificateOwnershipToken": "t", "parameters": parameters}).encode()
        )
    assert refused.value.field == "parameters"


@given(
    accepted=CREATE_ACCEPTED,
    key=st.sampled_from(["certificateId", "certificatePem", "certificateOwnershipToken", "privateKey"]),
    value=NOT_TEXT,
    data=st.data(),
)
def test_a_certificate_reply_with_a_field_that_is_no_text_names_it(
    accepted: CreateCertificateAccepted, key: str, value: Any, data: st.DataObject
) -> None:
    body = json.loads(build_create_accepted(accepted))
    if key == "privateKey" and value is None:
        value = data.draw(NOT_TEXT.filter(lambda other: other is not None))
    if data.draw(st.booleans()) and key != "privateKey":
        del body[key]
    else:
        body[key] = value
    with pytest.raises(ProvisioningPayloadError) as refused:
        parse_create_accepted(body)
    assert refused.value.field == key


@given(accepted=REGISTER_ACCEPTED, name=NOT_TEXT)
def test_a_registration_reply_without_a_thing_name_names_the_field(
    accepted: RegisterThingAccepted, name: Any
) -> None:
    body = json.loads(build_register_accepted(accepted)) | {"thingName": name}
    with pytest.raises(ProvisioningPayloadError) as refused:
        parse_register_accepted(body)
    assert refused.value.field == "thingName"


@given(key=st.text(), value=JSON_VALUES.filter(lambda value: not isinstance(value, str)))
def test_a_device_configuration_that_is_no_flat_strings_names_the_path(key: str, value: Any) -> None:
    with pytest.raises(ProvisioningPayloadError) as refused:
        parse_register_accepted({"thingName": "t", "deviceConfiguration": {key: value}})
    path = f"deviceConfiguration.{key}"
    assert refused.value.field == path
    assert str(refused.value).startswith(f"Field {path!r} is invalid: ")
