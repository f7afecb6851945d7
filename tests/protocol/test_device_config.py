"""The device configuration file: what ``edgewise device bootstrap`` writes the runtime reads into the same
values, every valid file survives a write and a parse, and every rejected shape is named by its field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.protocol.device_config import (
    ArtifactsSection,
    CloudSection,
    DeviceConfig,
    DeviceConfigError,
    FleetSection,
    ReconnectSection,
    SpoolSection,
    parse_device_config,
    write_device_config,
)
from edgewise.runtime.cloudlink import CloudLinkSettings, FleetSettings, ReconnectSettings, SpoolSettings
from edgewise.runtime.config_file import (
    RuntimeFileSettings,
    artifact_limits,
    cloud_settings,
    load_config_file,
)
from edgewise.runtime.provisioning import write_device_directory
from edgewise.runtime.settings import ArtifactLimits
from tests.support.pki import CertificateAuthority

FILES = ("device.pem.crt", "device.pem.key", "ca.pem")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ca.pem, device.pem.crt and device.pem.key."""
    ca = CertificateAuthority(tmp_path_factory.mktemp("device-config") / "pki")
    ca.issue("device")
    return ca.certificate.parent


def _problems(text: str, base_dir: Path) -> tuple[str, ...]:
    with pytest.raises(DeviceConfigError) as caught:
        parse_device_config(text, base_dir=base_dir)
    return caught.value.problems


def _valid_document() -> dict[str, Any]:
    return {
        "thingName": "sensor-1",
        "cloud": {
            "endpoint": "broker.example.com",
            "certificate": FILES[0],
            "privateKey": FILES[1],
            "rootCa": FILES[2],
        },
    }


def test_bootstrap_writes_the_same_text_as_before() -> None:
    config = DeviceConfig(
        thing_name="boot-1",
        cloud=CloudSection(
            endpoint="localhost",
            port=1234,
            certificate=Path("device.pem.crt"),
            private_key=Path("private.pem.key"),
            root_ca=Path("root-ca.pem"),
        ),
    )

    assert write_device_config(config) == (
        "thingName: boot-1\n"
        "cloud:\n"
        "  endpoint: localhost\n"
        "  port: 1234\n"
        "  certificate: device.pem.crt\n"
        "  privateKey: private.pem.key\n"
        "  rootCa: root-ca.pem\n"
    )


def test_what_bootstrap_writes_the_runtime_reads_into_the_same_values(tmp_path: Path, pki: Path) -> None:
    out = tmp_path / "device"
    write_device_directory(
        out,
        thing="boot-1",
        certificate_pem=(pki / "device.pem.crt").read_text(),
        private_key_pem=(pki / "device.pem.key").read_text(),
        root_ca_pem=(pki / "ca.pem").read_text(),
        host="broker.example.com",
        port=18883,
    )

    loaded = load_config_file(out / "edgewise.yaml")

    assert loaded == RuntimeFileSettings(
        thing_name="boot-1",
        cloud=CloudLinkSettings(
            endpoint="broker.example.com",
            port=18883,
            certificate=out / "device.pem.crt",
            private_key=out / "private.pem.key",
            root_ca=out / "root-ca.pem",
        ),
        artifacts=ArtifactLimits(),
    )


def test_the_runtime_settings_default_to_what_an_empty_file_says(pki: Path) -> None:
    certificate, private_key, root_ca = (pki / name for name in FILES)
    cloud = CloudSection(endpoint="h", certificate=certificate, private_key=private_key, root_ca=root_ca)

    assert parse_device_config("", base_dir=pki) == DeviceConfig()
    assert artifact_limits(ArtifactsSection()) == ArtifactLimits()
    assert cloud_settings(cloud) == CloudLinkSettings(
        endpoint="h", certificate=certificate, private_key=private_key, root_ca=root_ca
    )


def test_every_section_reaches_the_runtime_settings(pki: Path) -> None:
    cloud = CloudSection(
        endpoint="h",
        certificate=pki / FILES[0],
        private_key=pki / FILES[1],
        root_ca=pki / FILES[2],
        port=443,
        client_id="other",
        keep_alive=30,
        spool=SpoolSection(max_bytes=4096, keep_qos0_when_offline=True),
        reconnect=ReconnectSection(min_delay=0.5, max_delay=10.0),
        fleet=FleetSection(enabled=False, status_interval=3600, confirm_interval=5),
    )

    settings = cloud_settings(cloud)

    assert (settings.port, settings.client_id, settings.keep_alive) == (443, "other", 30)
    assert settings.spool == SpoolSettings(max_bytes=4096, keep_qos0_when_offline=True)
    assert settings.reconnect == ReconnectSettings(min_delay=0.5, max_delay=10.0)
    assert settings.fleet == FleetSettings(enabled=False, status_interval=3600, confirm_interval=5)
    limits = ArtifactsSection(max_expanded_bytes=1, max_compression_ratio=2, min_free_bytes=3)
    assert artifact_limits(limits) == ArtifactLimits(
        max_expanded_bytes=1, max_compression_ratio=2, min_free_bytes=3
    )


_seconds = st.floats(min_value=0, max_value=86_400, exclude_min=True, allow_nan=False, allow_infinity=False)


@st.composite
def _reconnects(draw: st.DrawFn) -> ReconnectSection:
    low, high = sorted((draw(_seconds), draw(_seconds)))
    return ReconnectSection(min_delay=low, max_delay=high)


@st.composite
def _clouds(draw: st.DrawFn, pki: Path) -> CloudSection:
    def file(name: str) -> Path:
        return draw(st.sampled_from([Path(name), pki / name]))

    return CloudSection(
        endpoint=draw(st.from_regex(r"[a-z0-9][a-z0-9.-]{0,62}", fullmatch=True)),
        certificate=file(FILES[0]),
        private_key=file(FILES[1]),
        root_ca=file(FILES[2]),
        port=draw(st.integers(1, 65535)),
        https_port=draw(st.integers(1, 65535)),
        client_id=draw(st.none() | st.text(min_size=1, max_size=128)),
        keep_alive=draw(st.integers(5, 1200)),
        spool=SpoolSection(
            max_bytes=draw(st.integers(1024, 2**40)), keep_qos0_when_offline=draw(st.booleans())
        ),
        reconnect=draw(_reconnects()),
        fleet=FleetSection(enabled=draw(st.booleans()), status_interval=draw(st.integers(1, 31_536_000))),
    )


@st.composite
def _configs(draw: st.DrawFn, pki: Path) -> DeviceConfig:
    return DeviceConfig(
        thing_name=draw(st.none() | st.text(min_size=1, max_size=128)),
        cloud=draw(st.none() | _clouds(pki)),
        artifacts=ArtifactsSection(
            max_expanded_bytes=draw(st.integers(1, 2**50)),
            max_compression_ratio=draw(st.integers(1, 1_000_000)),
            min_free_bytes=draw(st.integers(0, 2**50)),
        ),
    )


def _resolved(config: DeviceConfig, base_dir: Path) -> DeviceConfig:
    """``config`` as the parser gives it back: the files as absolute paths."""
    if config.cloud is None:
        return config
    cloud = config.cloud
    return DeviceConfig(
        thing_name=config.thing_name,
        cloud=CloudSection(
            endpoint=cloud.endpoint,
            certificate=base_dir / cloud.certificate,
            private_key=base_dir / cloud.private_key,
            root_ca=base_dir / cloud.root_ca,
            port=cloud.port,
            https_port=cloud.https_port,
            client_id=cloud.client_id,
            keep_alive=cloud.keep_alive,
            spool=cloud.spool,
            reconnect=cloud.reconnect,
            fleet=cloud.fleet,
        ),
        artifacts=config.artifacts,
    )


def test_every_valid_file_survives_a_write_and_a_parse(pki: Path) -> None:
    @settings(max_examples=60, deadline=None)
    @given(_configs(pki))
    def check(config: DeviceConfig) -> None:
        assert parse_device_config(write_device_config(config), base_dir=pki) == _resolved(config, pki)

    check()


#: Each integer field: its path and its range.
INTEGERS = [
    (("cloud", "port"), 1, 65535),
    (("cloud", "httpsPort"), 1, 65535),
    (("cloud", "keepAlive"), 5, 1200),
    (("cloud", "spool", "maxBytes"), 1024, 2**40),
    (("cloud", "fleet", "statusIntervalSeconds"), 1, 31_536_000),
    (("cloud", "fleet", "confirmIntervalSeconds"), 1, 3600),
    (("artifacts", "maxExpandedBytes"), 1, 2**50),
    (("artifacts", "maxCompressionRatio"), 1, 1_000_000),
    (("artifacts", "minFreeBytes"), 0, 2**50),
]
BOOLEANS = [("cloud", "spool", "keepQos0WhenOffline"), ("cloud", "fleet", "enabled")]
SECTIONS = {
    (): ("thingName", "cloud", "artifacts"),
    ("cloud",): (
        "endpoint",
        "port",
        "httpsPort",
        "clientId",
        "certificate",
        "privateKey",
        "rootCa",
        "keepAlive",
        "spool",
        "reconnect",
        "fleet",
    ),
    ("cloud", "spool"): ("maxBytes", "keepQos0WhenOffline"),
    ("cloud", "reconnect"): ("minDelay", "maxDelay"),
    ("cloud", "fleet"): ("enabled", "statusIntervalSeconds", "confirmIntervalSeconds"),
    ("artifacts",): ("maxExpandedBytes", "maxCompressionRatio", "minFreeBytes"),
}
_not_numbers = st.text(max_size=5) | st.none() | st.lists(st.integers(), max_size=2)


def _with(path: tuple[str, ...], value: object) -> str:
    """The valid document with ``value`` at ``path``, as YAML."""
    document = _valid_document()
    section = document
    for key in path[:-1]:
        section = section.setdefault(key, {})
    section[path[-1]] = value
    return yaml.safe_dump(document)


def _loaded(value: object) -> object:
    """``value`` as YAML gives it back."""
    return yaml.safe_load(yaml.safe_dump(value))


@pytest.mark.parametrize(("path", "low", "high"), INTEGERS, ids=[".".join(path) for path, *_ in INTEGERS])
def test_an_integer_out_of_range_or_of_another_type_is_named(
    pki: Path, path: tuple[str, ...], low: int, high: int
) -> None:
    out_of_range = st.integers(max_value=low - 1) | st.integers(min_value=high + 1)
    other_types = st.booleans() | st.floats(allow_nan=False) | _not_numbers

    @settings(max_examples=25, deadline=None)
    @given(out_of_range | other_types)
    def check(value: object) -> None:
        expected = f"{'.'.join(path)}: expected an integer {low}-{high}, got {_loaded(value)!r}"
        assert expected in _problems(_with(path, value), pki)

    check()


@pytest.mark.parametrize("path", BOOLEANS, ids=[".".join(path) for path in BOOLEANS])
def test_a_boolean_of_another_type_is_named(pki: Path, path: tuple[str, ...]) -> None:
    @settings(max_examples=25, deadline=None)
    @given(st.integers() | _not_numbers)
    def check(value: object) -> None:
        expected = f"{'.'.join(path)}: expected true or false, got {_loaded(value)!r}"
        assert expected in _problems(_with(path, value), pki)

    check()


@pytest.mark.parametrize("key", ["minDelay", "maxDelay"])
def test_seconds_that_are_not_a_positive_number_up_to_a_day_are_named(pki: Path, key: str) -> None:
    bad = (
        st.floats(max_value=0) | st.floats(min_value=86_400, exclude_min=True) | st.booleans() | _not_numbers
    )

    @settings(max_examples=25, deadline=None)
    @given(bad)
    def check(value: object) -> None:
        expected = f"cloud.reconnect.{key}: expected a number of seconds above 0, got {_loaded(value)!r}"
        assert expected in _problems(_with(("cloud", "reconnect", key), value), pki)

    check()


@pytest.mark.parametrize("path", [("thingName",), ("cloud", "clientId")], ids=["thingName", "cloud.clientId"])
def test_a_name_that_is_empty_too_long_or_not_a_string_is_named(pki: Path, path: tuple[str, ...]) -> None:
    @settings(max_examples=25, deadline=None)
    @given(st.just("") | st.text(min_size=129, max_size=200) | st.integers() | st.booleans())
    def check(value: object) -> None:
        expected = f"{'.'.join(path)}: expected a string of 1-128 characters, got {_loaded(value)!r}"
        assert expected in _problems(_with(path, value), pki)

    check()


@pytest.mark.parametrize("where", list(SECTIONS), ids=[".".join(where) or "top" for where in SECTIONS])
def test_an_unknown_key_is_named_with_the_keys_its_section_allows(pki: Path, where: tuple[str, ...]) -> None:
    allowed = SECTIONS[where]

    @settings(max_examples=15, deadline=None)
    @given(st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,15}", fullmatch=True).filter(lambda key: key not in allowed))
    def check(key: str) -> None:
        expected = f"{'.'.join((*where, key))}: unknown key (expected one of {', '.join(allowed)})"
        assert expected in _problems(_with((*where, key), 1), pki)

    check()


@pytest.mark.parametrize("where", [w for w in SECTIONS if w], ids=[".".join(w) for w in SECTIONS if w])
def test_a_section_that_is_not_a_mapping_is_named(pki: Path, where: tuple[str, ...]) -> None:
    @settings(max_examples=15, deadline=None)
    @given(st.integers() | st.text(min_size=1, max_size=5) | st.lists(st.integers(), max_size=2))
    def check(value: object) -> None:
        expected = f"{'.'.join(where)}: expected a mapping, got {_loaded(value)!r}"
        assert expected in _problems(_with(where, value), pki)

    check()


def test_a_file_that_is_not_a_mapping_is_refused(pki: Path) -> None:
    assert _problems("- a\n", pki) == ("the file: expected a mapping, got ['a']",)
    assert _problems("cloud: [unclosed\n", pki)[0].startswith("not valid YAML: ")


@pytest.mark.parametrize("key", ["endpoint", "certificate", "privateKey", "rootCa"])
def test_the_connection_basics_are_required(pki: Path, key: str) -> None:
    document = _valid_document()
    del document["cloud"][key]

    assert f"cloud.{key}: required" in _problems(yaml.safe_dump(document), pki)


def test_an_endpoint_that_is_not_a_host_name_and_missing_files_are_named(pki: Path) -> None:
    document = _valid_document()
    document["cloud"] |= {"endpoint": "mqtts://broker:8883", "certificate": "missing.pem", "rootCa": "."}

    problems = _problems(yaml.safe_dump(document), pki)

    assert (
        "cloud.endpoint: expected a host name like broker.example.com, got 'mqtts://broker:8883'" in problems
    )
    assert f"cloud.certificate: file {pki / 'missing.pem'} does not exist" in problems
    assert f"cloud.rootCa: {pki} is not a file" in problems


def test_a_max_delay_below_the_min_delay_is_named(pki: Path) -> None:
    text = _with(("cloud", "reconnect"), {"minDelay": 5, "maxDelay": 1.5})

    assert _problems(text, pki) == ("cloud.reconnect.maxDelay: must not be below minDelay (5), got 1.5",)


def test_files_that_do_not_load_as_a_tls_identity_are_named(pki: Path) -> None:
    swapped = _valid_document()
    swapped["cloud"] |= {"certificate": "ca.pem"}
    no_ca = _valid_document()
    no_ca["cloud"] |= {"rootCa": "device.pem.key"}

    assert _problems(yaml.safe_dump(swapped), pki)[0].startswith(
        f"cloud.certificate, cloud.privateKey: {pki / 'ca.pem'} and {pki / 'device.pem.key'} "
        "are not a matching PEM certificate and key: "
    )
    assert _problems(yaml.safe_dump(no_ca), pki)[0].startswith(
        "cloud.rootCa: no CA certificate can be loaded"
    )
