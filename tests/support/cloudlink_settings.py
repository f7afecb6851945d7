"""Cloud link settings for a test device, and the fixtures they need: a CA and a real Mosquitto trusting it.

Conftest files import the fixtures ``ca``, ``broker`` and ``settings_for``; tests type the last one as
:class:`SettingsFactory`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from edgewise.runtime.cloudlink import CloudLinkSettings, ReconnectSettings, SpoolSettings
from tests.support.mosquitto import Mosquitto
from tests.support.pki import CertificateAuthority


class SettingsFactory(Protocol):
    """Makes :class:`CloudLinkSettings` for device ``dev-1``; keyword arguments replace fields."""

    def __call__(self, **changes: Any) -> CloudLinkSettings: ...


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def broker(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", ca) as running:
        yield running


@pytest.fixture
def settings_for(ca: CertificateAuthority, broker: Mosquitto) -> SettingsFactory:
    """Settings of a device ``dev-1`` for the broker; keyword arguments replace fields."""
    device = ca.issue("dev-1")
    base = CloudLinkSettings(
        endpoint="localhost",
        port=broker.port,
        certificate=device.certificate,
        private_key=device.private_key,
        root_ca=ca.certificate,
        keep_alive=10,
        spool=SpoolSettings(),
        reconnect=ReconnectSettings(min_delay=0.1, max_delay=0.5),
    )

    def make(**changes: Any) -> CloudLinkSettings:
        return dataclasses.replace(base, **changes)

    return make
