"""Rendering mosquitto.conf and the worker password file from broker settings."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from edgewise.cloud.broker import (
    BrokerConfigError,
    BrokerSettings,
    DeviceListenerSettings,
    WorkerListenerSettings,
    hash_password,
    render_config,
    write_config,
)


def _settings(tmp_path: Path, **changes: object) -> BrokerSettings:
    devices = DeviceListenerSettings(
        port=8883, cafile=tmp_path / "ca.pem", certfile=tmp_path / "s.crt", keyfile=tmp_path / "s.key"
    )
    return BrokerSettings(data_dir=tmp_path / "broker", devices=devices, **changes)  # type: ignore[arg-type]


def test_config_requires_certificates_and_binds_identity_to_client_id(tmp_path: Path) -> None:
    lines = render_config(_settings(tmp_path)).splitlines()
    assert lines[1] == "per_listener_settings true"
    for directive in (
        "listener 8883 0.0.0.0",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        f"acl_file {tmp_path / 'broker' / 'devices.acl'}",
        f"persistence_location {tmp_path / 'broker' / 'persistence'}/",
    ):
        assert directive in lines
    assert not any(line.startswith(("crlfile", "password_file", "user ")) for line in lines)


def test_config_with_workers_adds_a_loopback_password_listener(tmp_path: Path) -> None:
    workers = WorkerListenerSettings.generate(18830)
    text = render_config(_settings(tmp_path, workers=workers, persistence=False, run_as_user="edgewise"))
    assert "listener 18830 127.0.0.1\nallow_anonymous false\npassword_file " in text
    assert "persistence false" in text
    assert "persistence_location" not in text
    assert "user edgewise" in text.splitlines()
    assert workers.password not in text
    assert workers.password not in repr(workers)


def test_write_config_writes_private_files_and_an_empty_acl(tmp_path: Path) -> None:
    settings = _settings(tmp_path, workers=WorkerListenerSettings.generate(18830))
    write_config(settings)
    assert settings.config_file.read_text() == render_config(settings)
    assert settings.acl_file.read_text().startswith("#")
    username, hashed = settings.password_file.read_text().strip().split(":")
    assert username == "edgewise-worker"
    assert hashed.startswith("$7$101$")
    assert (settings.password_file.stat().st_mode & 0o077) == 0


def test_hash_password_is_pbkdf2_sha512_in_mosquitto_format() -> None:
    salt = bytes(range(12))
    _, kind, iterations, salt_b64, digest_b64 = hash_password("secret", salt=salt).split("$")
    assert (kind, iterations, base64.b64decode(salt_b64)) == ("7", "101", salt)
    assert base64.b64decode(digest_b64) == hashlib.pbkdf2_hmac("sha512", b"secret", salt, 101)


@pytest.mark.parametrize(
    ("field", "build"),
    [
        ("devices.port", lambda p: DeviceListenerSettings(port=0, cafile=p, certfile=p, keyfile=p)),
        (
            "devices.cafile",
            lambda p: DeviceListenerSettings(port=1, cafile=p / "a\nb", certfile=p, keyfile=p),
        ),
        ("workers.username", lambda p: WorkerListenerSettings(port=1, password="p" * 16, username="a:b")),
        ("workers.password", lambda p: WorkerListenerSettings(port=1, password="short")),
    ],
)
def test_settings_when_invalid_names_the_field(tmp_path: Path, field: str, build: object) -> None:
    with pytest.raises(BrokerConfigError) as raised:
        build(tmp_path)  # type: ignore[operator]
    assert raised.value.field == field


def test_settings_when_workers_share_the_devices_port_raises(tmp_path: Path) -> None:
    with pytest.raises(BrokerConfigError, match=r"workers\.port"):
        _settings(tmp_path, workers=WorkerListenerSettings.generate(8883))


def test_config_caps_every_packet_at_the_max_packet_size(tmp_path: Path) -> None:
    assert "max_packet_size 4194304" in render_config(_settings(tmp_path)).splitlines()
    text = render_config(
        _settings(tmp_path, max_packet_size=200_000, workers=WorkerListenerSettings.generate(1))
    )
    # Global: before the first listener, so it binds the workers' listener as much as the devices'.
    assert text.index("max_packet_size 200000\n") < text.index("listener ")


def test_config_lets_a_worker_fall_behind_a_burst_without_losing_messages(tmp_path: Path) -> None:
    lines = render_config(_settings(tmp_path)).splitlines()
    assert "max_queued_messages 100000" in lines
    assert "max_queued_bytes 268435456" in lines


def test_config_sends_each_packet_at_once(tmp_path: Path) -> None:
    # Nagle's algorithm would hold a reply back until the client's delayed ACK: about 40 ms a round trip.
    assert "set_tcp_nodelay true" in render_config(_settings(tmp_path)).splitlines()


@pytest.mark.parametrize("limit", ["max_queued_messages", "max_queued_bytes"])
def test_a_queue_limit_that_is_not_positive_names_the_field(tmp_path: Path, limit: str) -> None:
    with pytest.raises(BrokerConfigError, match=limit):
        _settings(tmp_path, **{limit: 0})


@pytest.mark.parametrize("size", [20, 65_535, 268_435_456])
def test_a_max_packet_size_out_of_range_names_the_field(tmp_path: Path, size: int) -> None:
    with pytest.raises(BrokerConfigError, match=f"{size} bytes is not between 65536 and 268435455") as raised:
        _settings(tmp_path, max_packet_size=size)
    assert raised.value.field == "max_packet_size"
