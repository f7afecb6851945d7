"""Client-device protocol: every payload a builder writes parses back to itself, parsers refuse bad payloads by
raising ClientDeviceProtocolError naming the field (never another exception), and the topics."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.protocol import client_devices as cd
from edgewise.protocol.client_devices import (
    CaUpdate,
    ClientCertificate,
    ClientDevice,
    ClientDeviceList,
    ClientDeviceProtocolError,
    ClientDeviceRejection,
    ConnectivityAccepted,
    ConnectivityEntry,
    ConnectivityUpdate,
)

PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
CRL = "-----BEGIN X509 CRL-----\nMIIBszCCAVmgAwIBAgIU\n-----END X509 CRL-----\n"

tokens = st.text(st.characters(codec="utf-8"), min_size=1, max_size=cd.CLIENT_TOKEN_MAX_LENGTH)
hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
things = st.from_regex(r"[a-zA-Z0-9:_-]{1,128}", fullmatch=True)
texts = st.text(st.characters(min_codepoint=0x20, codec="utf-8"), max_size=40)
hosts = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True),
)
entries = st.builds(
    ConnectivityEntry,
    id=texts.filter(bool),
    host_address=hosts,
    port_number=st.integers(1, 65535),
    metadata=texts,
)
device_lists = st.builds(
    ClientDeviceList,
    client_devices=st.lists(
        st.builds(
            ClientDevice,
            thing_name=things,
            certificates=st.lists(st.builds(ClientCertificate, hex64, hex64), max_size=3).map(tuple),
        ),
        max_size=5,
        unique_by=lambda device: device.thing_name,
    ).map(tuple),
    ca_certificates=st.lists(st.just(PEM), max_size=cd.MAX_CA_CERTIFICATES).map(tuple),
    crl=st.sampled_from([None, CRL]),
    timestamp=st.integers(0, 2**63 - 1),
)
PARSERS = [
    cd.parse_get_request,
    cd.parse_client_device_list,
    cd.parse_changed,
    cd.parse_connectivity_update,
    cd.parse_connectivity_accepted,
    cd.parse_ca_update,
    cd.parse_ca_accepted,
    cd.parse_rejection,
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def outcome(parse: Any, payload: bytes) -> ClientDeviceProtocolError | None:
    """The error ``parse`` raises for ``payload``, or None when it parses; any other exception fails the test."""
    try:
        parse(payload)
    except ClientDeviceProtocolError as error:
        return error
    return None


def refusal(parse: Any, body: Any) -> ClientDeviceProtocolError:
    with pytest.raises(ClientDeviceProtocolError) as caught:
        parse(json.dumps(body).encode())
    return caught.value


@settings(max_examples=25, deadline=None)
@given(tokens, device_lists)
def test_a_built_device_list_parses_back_to_itself(token: str, device_list: ClientDeviceList) -> None:
    payload = cd.build_client_device_list(token, device_list)
    assert cd.parse_client_device_list(payload) == device_list
    assert cd.client_token_of(payload) == token


@settings(max_examples=60, deadline=None)
@given(tokens, st.lists(entries, max_size=8, unique_by=lambda entry: entry.id))
def test_a_built_connectivity_update_parses_back_to_itself(
    token: str, items: list[ConnectivityEntry]
) -> None:
    update = ConnectivityUpdate(token, tuple(items))
    assert cd.parse_connectivity_update(cd.build_connectivity_update(update)) == update


@settings(max_examples=30, deadline=None)
@given(tokens, st.integers(1, 2**63 - 1), st.lists(st.just(PEM), min_size=1, max_size=8))
def test_the_small_payloads_parse_back(token: str, version: int, pems: list[str]) -> None:
    assert cd.parse_get_request(cd.build_get_request(token)) == token
    assert cd.parse_changed(cd.build_changed(version)) == version
    accepted = ConnectivityAccepted(token, version)
    assert cd.parse_connectivity_accepted(cd.build_connectivity_accepted(accepted)) == accepted
    update = CaUpdate(token, tuple(pems))
    assert cd.parse_ca_update(cd.build_ca_update(update)) == update
    assert cd.parse_ca_accepted(cd.build_ca_accepted(token)) == token
    rejection = ClientDeviceRejection(token, cd.THROTTLED, "busy")
    assert cd.parse_rejection(cd.build_rejection(rejection)) == rejection


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(PARSERS),
    st.one_of(st.binary(max_size=64), json_values.map(lambda v: json.dumps(v).encode())),
)
def test_parsers_refuse_anything_with_their_own_error(parse: Any, payload: bytes) -> None:
    error = outcome(parse, payload)
    if error is not None:
        assert error.problem
        assert repr(error.field) in str(error)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "hostAddress", "portNumber", "metadata", "x"]), json_values))
def test_connectivity_entries_are_refused_only_by_field(entry: dict[str, Any]) -> None:
    error = outcome(lambda _: cd.parse_connectivity_entries([entry]), b"")
    if error is not None:
        assert error.field.startswith("connectivityInfo[0]")


def connectivity(**fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": "eth0", "hostAddress": "192.0.2.7", "portNumber": 8883, "metadata": ""}
    entry.update(fields)
    return {"clientToken": "t", "connectivityInfo": [entry]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (connectivity(portNumber=0), "connectivityInfo[0].portNumber"),
        (connectivity(portNumber=65536), "connectivityInfo[0].portNumber"),
        (connectivity(portNumber="8883"), "connectivityInfo[0].portNumber"),
        (connectivity(portNumber=True), "connectivityInfo[0].portNumber"),
        (connectivity(hostAddress="not a host"), "connectivityInfo[0].hostAddress"),
        (connectivity(hostAddress=""), "connectivityInfo[0].hostAddress"),
        (connectivity(id=""), "connectivityInfo[0].id"),
        (connectivity(colour="red"), "connectivityInfo[0].colour"),
        ({"clientToken": "t"}, "connectivityInfo"),
        ({"clientToken": "", "connectivityInfo": []}, "clientToken"),
        ({"clientToken": "t", "connectivityInfo": [], "extra": 1}, "extra"),
        (
            {"clientToken": "t", "connectivityInfo": connectivity()["connectivityInfo"] * 2},
            "connectivityInfo[1].id",
        ),
    ],
)
def test_a_bad_connectivity_update_names_its_field(body: dict[str, Any], field: str) -> None:
    assert refusal(cd.parse_connectivity_update, body).field == field


def test_too_many_connectivity_entries_are_refused() -> None:
    many = [
        {"id": f"a{index}", "hostAddress": "10.0.0.1", "portNumber": 8883}
        for index in range(cd.MAX_CONNECTIVITY_ENTRIES + 1)
    ]
    error = refusal(cd.parse_connectivity_update, {"clientToken": "t", "connectivityInfo": many})
    assert error.field == "connectivityInfo"
    assert str(cd.MAX_CONNECTIVITY_ENTRIES) in error.problem


def test_metadata_may_be_left_out_and_ipv6_is_a_host() -> None:
    entries = cd.parse_connectivity_entries([{"id": "v6", "hostAddress": "::1", "portNumber": 8883}])
    assert entries == (ConnectivityEntry("v6", "::1", 8883, ""),)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"clientToken": "t", "caCertificates": []}, "caCertificates"),
        ({"clientToken": "t", "caCertificates": ["hello"]}, "caCertificates[0]"),
        ({"clientToken": "t", "caCertificates": [PEM] * 9}, "caCertificates"),
        (
            {"clientToken": "t", "caCertificates": [PEM.replace("MII", "M" * cd.MAX_CA_PEM_LENGTH)]},
            "caCertificates[0]",
        ),
    ],
)
def test_a_bad_ca_update_names_its_field(body: dict[str, Any], field: str) -> None:
    assert refusal(cd.parse_ca_update, body).field == field


def test_a_bad_device_list_names_its_field() -> None:
    good = json.loads(cd.build_client_device_list("t", ClientDeviceList((), (PEM,), CRL, 1)))
    device = {"thingName": "sensor-1", "certificates": [{"certificateId": "a" * 64, "sha256": "B" * 64}]}
    assert refusal(cd.parse_client_device_list, {**good, "clientDevices": [device]}).field == (
        "clientDevices[0].certificates[0].sha256"
    )
    twice = [{"thingName": "s", "certificates": []}] * 2
    assert (
        refusal(cd.parse_client_device_list, {**good, "clientDevices": twice}).field
        == "clientDevices[1].thingName"
    )
    assert refusal(cd.parse_client_device_list, {**good, "crl": "x"}).field == "crl"


def test_a_list_too_large_to_send_is_refused_by_the_builder() -> None:
    certificate = ClientCertificate("a" * 64, "b" * 64)
    devices = tuple(ClientDevice(f"device-{index:0120d}", (certificate,)) for index in range(1200))
    with pytest.raises(ClientDeviceProtocolError) as caught:
        cd.build_client_device_list("t", ClientDeviceList(devices, (), None, 0))
    assert caught.value.field == "clientDevices"


def test_an_unknown_rejection_code_reads_as_internal_error() -> None:
    rejection = cd.parse_rejection(b'{"code":"Teapot","message":"no"}')
    assert rejection.code == cd.INTERNAL_ERROR
    assert rejection.client_token is None
    assert "Teapot" in rejection.message


def test_topics_and_their_requests() -> None:
    assert cd.get_topic("core-1") == "$aws/things/core-1/edgewise/clientdevices/get"
    assert (
        cd.get_reply_topic("core-1", "accepted") == "$aws/things/core-1/edgewise/clientdevices/get/accepted"
    )
    assert cd.changed_topic("core-1") == "$aws/things/core-1/edgewise/clientdevices/changed"
    assert cd.connectivity_topic("c") == "$aws/things/c/edgewise/connectivity/update"
    assert (
        cd.connectivity_reply_topic("c", "rejected") == "$aws/things/c/edgewise/connectivity/update/rejected"
    )
    assert cd.ca_topic("c") == "$aws/things/c/edgewise/clientdevices/ca/update"
    assert cd.ca_reply_topic("c", "accepted") == "$aws/things/c/edgewise/clientdevices/ca/update/accepted"
    assert cd.core_of_request(cd.get_topic("core-1")) == ("core-1", "get")
    assert cd.core_of_request(cd.connectivity_topic("core-1")) == ("core-1", "connectivity")
    assert cd.core_of_request(cd.ca_topic("core-1")) == ("core-1", "ca")
    assert cd.core_of_request(cd.changed_topic("core-1")) is None
    assert cd.core_of_request("$aws/things/a/b/edgewise/clientdevices/get") is None
    assert cd.get_topic("+") == cd.GET_FILTER
