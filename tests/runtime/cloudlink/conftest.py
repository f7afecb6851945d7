"""The cloud link tests' fixtures: a CA, a real Mosquitto with mutual TLS, and settings for a device."""

from __future__ import annotations

from tests.support.cloudlink_settings import broker, ca, settings_for

__all__ = ["broker", "ca", "settings_for"]
