"""The fleet tests use the cloud link's fixtures: a CA, a real Mosquitto with mutual TLS, device settings."""

from __future__ import annotations

from tests.runtime.cloudlink.conftest import broker, ca, settings_for

__all__ = ["broker", "ca", "settings_for"]
