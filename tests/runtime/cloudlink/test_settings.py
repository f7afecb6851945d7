"""The runtime configuration file: defaults, relative paths, and an error naming every bad field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.support.pki import CertificateAuthority

from edgewise.runtime.__main__ import parse_args
from edgewise.runtime.cloudlink import (
    CloudLinkSettings,
    ConfigFileError,
    ReconnectSettings,
    SpoolSettings,
)
from edgewise.runtime.config_file import load_config_file


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A directory with ca.pem, device.pem.crt and device.pem.key."""
    ca = CertificateAuthority(tmp_path / "pki")
    device = ca.issue("device")
    assert device.certificate.parent == ca.certificate.parent
    return ca.certificate.parent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pki" / "edgewise.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_a_minimal_cloud_section_gets_the_documented_defaults(tmp_path: Path, pki: Path) -> None:
    path = _write(
        tmp_path,
        """\
        thingName: my-device
        cloud:
          endpoint: broker.example.com
          certificate: device.pem.crt
          privateKey: device.pem.key
          rootCa: ca.pem
        """,
    )

    loaded = load_config_file(path)

    assert loaded.thing_name == "my-device"
    assert loaded.cloud == CloudLinkSettings(
        endpoint="broker.example.com",
        certificate=pki / "device.pem.crt",
        private_key=pki / "device.pem.key",
        root_ca=pki / "ca.pem",
        port=8883,
        client_id=None,
        keep_alive=60,
        spool=SpoolSettings(max_bytes=2_621_440, keep_qos0_when_offline=False),
        reconnect=ReconnectSettings(min_delay=1.0, max_delay=120.0),
    )


def test_every_field_can_be_set(tmp_path: Path, pki: Path) -> None:
    path = _write(
        tmp_path,
        f"""\
        cloud:
          endpoint: 127.0.0.1
          port: 443
          clientId: other-id
          certificate: {pki / "device.pem.crt"}
          privateKey: {pki / "device.pem.key"}
          rootCa: {pki / "ca.pem"}
          keepAlive: 30
          spool: {{maxBytes: 4096, keepQos0WhenOffline: true}}
          reconnect: {{minDelay: 0.5, maxDelay: 10}}
        """,
    )

    cloud = load_config_file(path).cloud

    assert cloud is not None
    assert (cloud.port, cloud.client_id, cloud.keep_alive) == (443, "other-id", 30)
    assert cloud.spool == SpoolSettings(max_bytes=4096, keep_qos0_when_offline=True)
    assert cloud.reconnect == ReconnectSettings(min_delay=0.5, max_delay=10.0)
    assert load_config_file(_write(tmp_path, "")).cloud is None


def test_every_bad_field_is_named_in_one_error(tmp_path: Path, pki: Path) -> None:
    path = _write(
        tmp_path,
        """\
        thingName: ""
        colud: {}
        cloud:
          endpoint: mqtts://broker.example.com
          port: x
          certificate: missing.pem
          privateKey: device.pem.key
          keepAlive: true
          spool: {maxBytes: -1, keepQos0WhenOffline: "no", extra: 1}
          reconnect: {minDelay: 5, maxDelay: 1}
        """,
    )

    with pytest.raises(ConfigFileError) as caught:
        load_config_file(path)

    problems = caught.value.problems
    assert "cloud.port: expected an integer 1-65535, got 'x'" in problems
    assert "colud: unknown key (expected one of thingName, cloud, artifacts)" in problems
    assert "thingName: expected a string of 1-128 characters, got ''" in problems
    assert f"cloud.certificate: file {pki / 'missing.pem'} does not exist" in problems
    assert "cloud.rootCa: required" in problems
    assert "cloud.keepAlive: expected an integer 5-1200, got True" in problems
    assert "cloud.spool.maxBytes: expected an integer 1024-1099511627776, got -1" in problems
    assert "cloud.spool.keepQos0WhenOffline: expected true or false, got 'no'" in problems
    assert any(problem.startswith("cloud.spool.extra: unknown key") for problem in problems)
    assert "cloud.reconnect.maxDelay: must not be below minDelay (5), got 1" in problems
    assert any(problem.startswith("cloud.endpoint: expected a host name") for problem in problems)
    assert str(path) in str(caught.value)


def test_files_that_are_not_a_certificate_and_key_are_refused(tmp_path: Path, pki: Path) -> None:
    path = _write(
        tmp_path,
        """\
        cloud:
          endpoint: localhost
          certificate: ca.pem
          privateKey: device.pem.key
          rootCa: device.pem.key
        """,
    )

    with pytest.raises(ConfigFileError, match=r"cloud\.rootCa: no CA certificate can be loaded"):
        load_config_file(path)


def test_unreadable_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read the file"):
        load_config_file(tmp_path / "absent.yaml")
    with pytest.raises(ConfigFileError, match="not valid YAML"):
        load_config_file(_write(tmp_path, "cloud: [unclosed\n"))
    with pytest.raises(ConfigFileError, match=r"the file: expected a mapping, got \['a'\]"):
        load_config_file(_write(tmp_path, "- a\n"))


def test_the_runtime_takes_its_thing_name_and_cloud_from_the_config_option(tmp_path: Path, pki: Path) -> None:
    path = _write(
        tmp_path,
        """\
        thingName: from-file
        cloud: {endpoint: localhost, certificate: device.pem.crt, privateKey: device.pem.key, rootCa: ca.pem}
        """,
    )

    settings = parse_args(
        ["--root", str(tmp_path / "root"), "--thing-name", "from-flag", "--config", str(path)]
    )

    assert settings.thing_name == "from-file"
    assert settings.cloud is not None
    assert settings.cloud.root_ca == pki / "ca.pem"
    assert parse_args(["--root", str(tmp_path / "root")]).cloud is None


def test_the_runtime_refuses_to_start_with_a_bad_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "cloud: {endpoint: localhost, port: x}\n")

    with pytest.raises(SystemExit) as caught:
        parse_args(["--root", str(tmp_path / "root"), "--config", str(path)])

    assert caught.value.code == 2
    assert "cloud.port: expected an integer 1-65535, got 'x'" in capsys.readouterr().err
