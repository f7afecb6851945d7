"""``cloud.fleet`` in the runtime configuration file: on by default, checked like every other field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.support.pki import CertificateAuthority

from edgewise.runtime.cloudlink import ConfigFileError, FleetSettings
from edgewise.runtime.config_file import load_config_file


def config(tmp_path: Path, fleet: str = "") -> Path:
    ca = CertificateAuthority(tmp_path / "pki")
    device = ca.issue("device")
    path = tmp_path / "edgewise.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            cloud:
              endpoint: localhost
              certificate: {device.certificate}
              privateKey: {device.private_key}
              rootCa: {ca.certificate}
            """
        )
        + (f"  fleet: {fleet}\n" if fleet else "")
    )
    return path


def test_the_agent_is_on_by_default_with_a_daily_status(tmp_path: Path) -> None:
    cloud = load_config_file(config(tmp_path)).cloud

    assert cloud is not None
    assert cloud.fleet == FleetSettings(enabled=True, status_interval=86_400, confirm_interval=10)


def test_the_agent_can_be_turned_off_and_its_cadence_set(tmp_path: Path) -> None:
    fleet = "{enabled: false, statusIntervalSeconds: 3600, confirmIntervalSeconds: 2}"
    cloud = load_config_file(config(tmp_path, fleet)).cloud

    assert cloud is not None
    assert cloud.fleet == FleetSettings(enabled=False, status_interval=3600, confirm_interval=2)


@pytest.mark.parametrize(
    ("fleet", "expected"),
    [
        ("{enabled: 1}", "cloud.fleet.enabled: expected true or false, got 1"),
        (
            "{statusIntervalSeconds: 0}",
            "cloud.fleet.statusIntervalSeconds: expected an integer 1-31536000, got 0",
        ),
        (
            "{confirmIntervalSeconds: 3601}",
            "cloud.fleet.confirmIntervalSeconds: expected an integer 1-3600, got 3601",
        ),
        ("{jobs: true}", "cloud.fleet.jobs: unknown key"),
        ("disabled", "cloud.fleet: expected a mapping, got 'disabled'"),
    ],
)
def test_a_bad_fleet_option_is_named(tmp_path: Path, fleet: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_config_file(config(tmp_path, fleet))

    assert expected in str(caught.value)
