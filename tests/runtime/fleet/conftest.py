"""The fleet tests use the cloud link's fixtures: a CA, a real Mosquitto with mutual TLS, device settings."""

from __future__ import annotations

from tests.support.cloudlink_settings import broker, ca, settings_for

__all__ = ["broker", "ca", "settings_for"]
