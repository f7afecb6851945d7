"""Broker URLs and the connection settings every cloud worker connects with."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.pki import CertificateAuthority
from tests.support.waiting import wait_until

from edgewise.cloud.broker import (
    BrokerConfigError,
    BrokerConnection,
    BrokerEndpoint,
    MosquittoBroker,
    WorkerListenerSettings,
)


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtts://broker.example.com:8883", "broker.example.com", 8883, True),
        ("mqtt://127.0.0.1:1883/", "127.0.0.1", 1883, False),
        ("mqtts://[::1]:8883", "::1", 8883, True),
    ],
)
def test_endpoint_parses_mqtt_and_mqtts_urls(url: str, host: str, port: int, tls: bool) -> None:
    endpoint = BrokerEndpoint.parse(url)
    assert (endpoint.host, endpoint.port, endpoint.tls) == (host, port, tls)
    assert BrokerEndpoint.parse(endpoint.url) == endpoint


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://broker:1883", "is not of the form mqtt://host:port or mqtts://host:port"),
        ("mqtts://broker", "is not of the form"),
        ("mqtts://:8883", "is not of the form"),
        ("mqtts://broker:0", "is not of the form"),
        ("mqtts://broker:99999", "Port out of range"),
        ("mqtts://worker:secret@broker:99999", "'mqtts://...@broker:99999' is not of the form"),
        ("mqtts://bro ker:8883", "'bro ker' is not a host name"),
        ("mqtts://broker:8883/devices", "path, query or fragment"),
        ("mqtts://broker:8883?x=1", "path, query or fragment"),
        ("mqtts://worker:secret@broker:8883", "has credentials; give them separately"),
        ("mqtts://broker:8883\nlistener 1", "is not a URL"),
    ],
)
def test_endpoint_refuses_what_is_not_mqtt_host_port(url: str, problem: str) -> None:
    with pytest.raises(BrokerConfigError, match=problem.replace("?", r"\?")) as raised:
        BrokerEndpoint.parse(url, field_name="broker_url")
    assert raised.value.field == "broker_url"
    assert "secret" not in str(raised.value)


URL_PIECES = st.builds(
    "{}://{}:{}{}".format,
    st.sampled_from(["mqtt", "mqtts", "MQTTS", "http", ""]),
    st.text(max_size=20),
    st.integers(min_value=-5, max_value=70_000),
    st.sampled_from(["", "/", "/x", "?q=1", "#f"]),
)


@given(st.text(max_size=80) | URL_PIECES)
def test_endpoint_parse_either_round_trips_or_names_the_field(url: str) -> None:
    try:
        endpoint = BrokerEndpoint.parse(url)
    except BrokerConfigError as exc:
        problem = exc
    else:
        assert 1 <= endpoint.port <= 65535
        assert BrokerEndpoint.parse(endpoint.url) == endpoint
        return
    assert problem.field == "url"


def test_connection_checks_its_settings() -> None:
    with pytest.raises(BrokerConfigError, match="without a user name") as raised:
        BrokerConnection("broker", 1883, password="secret-0123456789")
    assert raised.value.field == "password"
    with pytest.raises(BrokerConfigError, match="only for a TLS connection"):
        BrokerConnection.from_url("mqtt://broker:1883", ca_file=Path("/etc/ssl/certs/ca-certificates.crt"))
    with pytest.raises(BrokerConfigError) as raised:
        BrokerConnection("broker", 1883, username="a\nb")
    assert raised.value.field == "username"
    with pytest.raises(BrokerConfigError, match="between 1 and 65535"):
        BrokerConnection("broker", 0)


def test_connection_never_shows_its_password() -> None:
    connection = BrokerConnection.from_url(
        "mqtts://broker:8883", username="cloud", password="secret-0123456789"
    )
    assert "secret" not in repr(connection)
    assert connection.url == "mqtts://broker:8883"


def test_tls_context_checks_the_server_certificate_and_its_name(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path / "pki")
    context = BrokerConnection.from_url("mqtts://broker:8883", ca_file=authority.certificate).tls_context()
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert BrokerConnection.from_url("mqtt://broker:1883").tls_context() is None
    not_a_ca = tmp_path / "not-a-ca.pem"
    not_a_ca.write_text("hello")
    with pytest.raises(BrokerConfigError, match="cannot be used as CA certificates") as raised:
        BrokerConnection.from_url("mqtts://broker:8883", ca_file=not_a_ca).new_client("worker")
    assert raised.value.field == "ca_file"


async def test_a_client_for_the_worker_listener_connects_with_its_password(broker: MosquittoBroker) -> None:
    listener = broker.settings.workers
    assert isinstance(listener, WorkerListenerSettings)
    connection = BrokerConnection.for_listener(listener)
    assert connection.url == f"mqtt://127.0.0.1:{listener.port}"
    client = connection.new_client("edgewise-test-worker")
    connected: list[object] = []
    client.on_connect = lambda _client, _userdata, _flags, reason, _props: connected.append(reason)
    client.connect(connection.host, connection.port, keepalive=10)
    client.loop_start()
    try:
        reason = wait_until(lambda: connected, what="the worker listener's CONNACK")[0]
        assert not reason.is_failure  # type: ignore[attr-defined]
        # Nagle off: a worker's answer is not held back until the broker acknowledges its previous packet.
        sock = client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        client.disconnect()
        client.loop_stop()
